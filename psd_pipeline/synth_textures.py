"""Procedural photo-like images for synthetic designs: fractal noise, colour ramps, lighting, soft blobs.

Nothing here is a photograph: the textures are computed from the random generator, so they carry no licence.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5) -> np.ndarray:
    """H x W float32 in [0, 1]: bicubic-upsampled random grids, each octave twice as fine and half as strong."""
    total = np.zeros((height, width), np.float32)
    cells = int(rng.integers(2, 5))
    weight, norm = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.uniform(0.0, 1.0, (cells + 1, cells + 1)).astype(np.float32)
        up = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
        total += weight * np.asarray(up, np.float32)
        norm += weight
        weight *= float(rng.uniform(0.4, 0.6))
        cells *= 2
    total /= norm
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def palette(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` related colours (count x 3 float32, 0-255): one hue family, varied lightness and saturation."""
    hue = rng.uniform(0.0, 1.0)
    hues = (hue + rng.normal(0.0, 0.08, count)) % 1.0
    sat = rng.uniform(0.25, 0.9, count)
    val = np.sort(rng.uniform(0.15, 1.0, count))
    return np.stack([_hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val, strict=True)]).astype(np.float32)


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """H x W x 3 uint8: a noise field through a colour ramp, with a lighting gradient and out-of-focus blobs."""
    field = fractal_noise(rng, height, width)
    colours = palette(rng, 3)
    t = field * 2.0
    low = np.clip(t, 0.0, 1.0)[..., None]
    high = np.clip(t - 1.0, 0.0, 1.0)[..., None]
    rgb = colours[0] * (1 - low) + colours[1] * low
    rgb = rgb * (1 - high) + colours[2] * high
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0.0, 2 * np.pi)
    light = (xx / max(width, 1)) * np.cos(angle) + (yy / max(height, 1)) * np.sin(angle)
    light = (light - light.min()) / max(float(light.max() - light.min()), 1e-6)
    rgb = rgb * (0.7 + 0.5 * light[..., None])
    blobs = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(blobs)
    for _ in range(int(rng.integers(0, 6))):
        r = rng.uniform(0.03, 0.12) * max(width, height)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(60, 160)))
    glow = np.asarray(blobs.filter(ImageFilter.GaussianBlur(max(width, height) * 0.02)), np.float32)[..., None] / 255
    rgb = rgb * (1 - glow) + 255.0 * glow
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0
