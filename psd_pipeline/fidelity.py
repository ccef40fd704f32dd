"""Fidelity gate: how closely the recomposited layers reproduce the file's reference composite (PSNR, dB)."""

from __future__ import annotations

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
    if ours.shape[:2] != reference.shape[:2]:
        raise ValueError(f"size mismatch: {ours.shape[:2]} vs {reference.shape[:2]}")
    return min(PERFECT_PSNR, image_psnr(*comparable(ours, reference)))
