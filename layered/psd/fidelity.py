"""The check against the stored composite: how closely recomposited layers reproduce a reference (PSNR, dB).

`psnr` is the dataset builder's gate (premultiplied against a reference with alpha); `worst_over_psnr` is the
reader's rule, the worse of the image over black and over white, as a user sees it on either background.
"""

from __future__ import annotations

import math

import numpy as np

from layered.pixels import composite_over, premultiply
from layered.similarity import psnr as image_psnr

PERFECT_PSNR = 99.0  # reported for identical images (PSNR is infinite there)


def comparable(ours: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float arrays in [0, 1] that can be compared fairly.

    A reference with alpha is compared premultiplied (RGB weighted by alpha, plus alpha). A reference
    without alpha is what Photoshop stores for a flattened document: the image over white; ours is
    put over white too.
    """
    if reference.shape[2] == 4:
        return premultiply(ours), premultiply(reference)
    return composite_over(ours, dtype=np.float32), reference.astype(np.float32) / 255.0


def psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of `ours` (H x W x 4 straight RGBA) against `reference` (RGBA, or RGB over white), capped."""
    _check_sizes(ours, reference)
    return min(PERFECT_PSNR, image_psnr(*comparable(ours, reference)))


def worst_over_psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    """The worse PSNR (dB, capped) of `ours` over black and over white against `reference` over the same.

    A reference without alpha is the flattened document (over white): it is compared over white only.
    """
    _check_sizes(ours, reference)
    if reference.shape[2] == 3:  # ours over white, in units of 1/255^2 (integers, exact in float32)
        a = ours.reshape(-1, 4).astype(np.float32)
        white = a[:, :3] * a[:, 3:] + 255 * (255 - a[:, 3:]) - 255 * reference.reshape(-1, 3).astype(np.float32)
        white = white.astype(np.float64).ravel()
        mse = float(white @ white) / (white.size * 255.0**4)
        return PERFECT_PSNR if mse == 0 else min(PERFECT_PSNR, 10 * math.log10(1.0 / mse))
    # only the pixels that differ contribute; over black the difference is that of the premultiplied colours,
    # over white that minus the alpha's (in units of 1/255^2: integers, exact in float32 and float64)
    flat_ours = np.ascontiguousarray(ours).reshape(-1, 4)
    flat_reference = np.ascontiguousarray(reference).reshape(-1, 4)
    differ = np.flatnonzero(flat_ours.view(np.uint32)[:, 0] != flat_reference.view(np.uint32)[:, 0])
    if differ.size == 0:
        return PERFECT_PSNR
    a, b = flat_ours[differ].astype(np.float32), flat_reference[differ].astype(np.float32)
    black = a[:, :3] * a[:, 3:] - b[:, :3] * b[:, 3:]
    white = (black - 255 * (a[:, 3:] - b[:, 3:])).astype(np.float64).ravel()
    black = black.astype(np.float64).ravel()
    count = flat_ours.shape[0] * 3 * 255.0**4
    worst = max(float(black @ black), float(white @ white)) / count
    return PERFECT_PSNR if worst == 0 else min(PERFECT_PSNR, 10 * math.log10(1.0 / worst))


def _check_sizes(ours: np.ndarray, reference: np.ndarray) -> None:
    if ours.shape[:2] != reference.shape[:2]:
        raise ValueError(f"size mismatch: {ours.shape[:2]} vs {reference.shape[:2]}")
