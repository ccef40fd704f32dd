"""Fidelity gate: how closely the recomposited layers reproduce the file's reference composite (PSNR, dB)."""

from __future__ import annotations

import math

import numpy as np

PERFECT_PSNR = 99.0  # reported for identical images (PSNR is infinite there)


def comparable(ours: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float arrays in [0, 1] that can be compared fairly.

    A reference with alpha is compared premultiplied (RGB weighted by alpha, plus alpha). A reference
    without alpha is what Photoshop stores for a flattened document: the image over white; ours is
    put over white too.
    """
    ours = ours.astype(np.float32) / 255.0
    ref = reference.astype(np.float32) / 255.0
    if ref.shape[2] == 4:
        ours[..., :3] *= ours[..., 3:4]
        ref[..., :3] *= ref[..., 3:4]
        return ours, ref
    alpha = ours[..., 3:4]
    return ours[..., :3] * alpha + (1.0 - alpha), ref[..., :3]


def psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of `ours` (H x W x 4 straight RGBA) against `reference` (RGBA, or RGB over white)."""
    if ours.shape[:2] != reference.shape[:2]:
        raise ValueError(f"size mismatch: {ours.shape[:2]} vs {reference.shape[:2]}")
    a, b = comparable(ours, reference)
    diff = a - b
    mse = float(np.mean(np.square(diff, out=diff), dtype=np.float64))
    if mse <= 1e-10:
        return PERFECT_PSNR
    return min(PERFECT_PSNR, 10.0 * math.log10(1.0 / mse))
