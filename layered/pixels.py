"""Pixel helpers on H x W x 4 uint8 straight-alpha arrays: bounding boxes and premultiplied resampling."""

from __future__ import annotations

import numpy as np
from PIL import Image


def alpha_bbox(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels with alpha > 0, or None when all are transparent."""
    alpha = pixels[..., 3]
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def premultiply(pixels: np.ndarray) -> np.ndarray:
    """Float32 premultiplied RGBA in [0, 1]."""
    out = pixels.astype(np.float32) / 255.0
    out[..., :3] *= out[..., 3:4]
    return out


def unpremultiply(premul: np.ndarray) -> np.ndarray:
    """uint8 straight-alpha RGBA from float premultiplied RGBA in [0, 1]; RGB is 0 where alpha is 0."""
    alpha = premul[..., 3:4]
    rgb = np.divide(premul[..., :3], alpha, out=np.zeros_like(premul[..., :3]), where=alpha > 0)
    out = np.concatenate([rgb, alpha], axis=-1)
    return (out * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


def transform_rgba(
    pixels: np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.BICUBIC, **transform
) -> np.ndarray:
    """Resize (or, with `transform`, apply Image.transform) in premultiplied space: no dark fringes."""
    premul = premultiply(pixels)
    channels = []
    for c in range(4):
        band = Image.fromarray(np.ascontiguousarray(premul[..., c]))
        if transform:
            band = band.transform(size, resample=resample, **transform)
        else:
            band = band.resize(size, resample=resample)
        channels.append(np.asarray(band, dtype=np.float32))
    out = np.stack(channels, axis=-1).clip(0.0, 1.0)
    out[..., :3] = np.minimum(out[..., :3], out[..., 3:4])
    return unpremultiply(out)


def resize_rgba(pixels: np.ndarray, size: tuple[int, int], resample: int = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize RGBA pixels to `size` = (width, height) in premultiplied space."""
    return transform_rgba(pixels, size, resample)


def composite_over(
    pixels: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), *, dtype: type = np.uint8
) -> np.ndarray:
    """Straight-alpha RGBA (H x W x 4 uint8) over an opaque colour, as H x W x 3 RGB.

    uint8 (the default) is rounded to nearest: exactly (c*a + bg*(255 - a) + 127) // 255, the formula of a
    PSD's stored composite. A float dtype gives the unrounded value in [0, 1], for PSNR and SSIM.
    """
    alpha = pixels[..., 3:4].astype(np.float32) * np.float32(1 / 255)
    out = pixels[..., :3] * alpha
    out += np.asarray(background, np.float32) * (1 - alpha)
    if np.dtype(dtype) == np.uint8:
        out += 0.5
        return out.astype(np.uint8)
    out *= np.float32(1 / 255)
    return out.astype(dtype, copy=False)
