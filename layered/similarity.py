"""Image similarity in the project's one convention: PSNR and SSIM of images with values in [0, 1].

PSNR is inf for identical images (callers that store a number cap it, e.g. `psd_pipeline.fidelity`);
SSIM is Wang et al. 2004 with a Gaussian window, averaged over channels. numpy only.
"""

from __future__ import annotations

import math

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images with values in [0, 1] (inf when equal)."""
    diff = np.subtract(a, b, dtype=np.float64)  # one float64 array: an 8192 x 8192 check stays affordable
    mse = float(np.mean(np.square(diff, out=diff)))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def gaussian_blur(image: np.ndarray, sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Separable Gaussian filter of a 2-D array, edges mirrored (as scipy.ndimage's mode="reflect")."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.asarray(image, np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis)
        out = windows @ kernel
    return out


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of H x W x C images in [0, 1]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01**2, 0.03**2
    scores = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch], b[..., ch]
        mx, my = gaussian_blur(x, sigma), gaussian_blur(y, sigma)
        vx = gaussian_blur(x * x, sigma) - mx * mx
        vy = gaussian_blur(y * y, sigma) - my * my
        cxy = gaussian_blur(x * y, sigma) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(s.mean())
    return float(np.mean(scores))
