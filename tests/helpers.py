"""Test helpers shared across test modules (random layers, PIL reference compositing)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from layered.stack import Layer, LayerStack


def random_layer(rng: np.random.Generator, canvas: tuple[int, int], name: str = "", off_canvas: bool = True) -> Layer:
    """A layer of random size with partial alpha, placed anywhere (partly off-canvas when allowed)."""
    width, height = canvas
    w, h = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if off_canvas:
        x, y = int(rng.integers(-w + 1, width)), int(rng.integers(-h + 1, height))
    else:
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return Layer(pixels, x, y, name or f"layer {x},{y}", opacity=float(rng.choice([1.0, 0.5, 0.25])))


def random_stack(rng: np.random.Generator, canvas=(48, 32), count: int = 4, off_canvas: bool = True) -> LayerStack:
    return LayerStack(canvas[0], canvas[1], tuple(random_layer(rng, canvas, f"L{i}", off_canvas) for i in range(count)))


def pil_composite(stack: LayerStack) -> np.ndarray:
    """The reference: PIL's alpha_composite chain over full-canvas renderings of each layer."""
    out = Image.new("RGBA", stack.size, (0, 0, 0, 0))
    for layer in stack.layers:
        if not layer.visible:
            continue
        pixels = np.array(layer.pixels)
        pixels[..., 3] = np.round(pixels[..., 3] * layer.opacity).astype(np.uint8)
        full = Image.new("RGBA", stack.size, (0, 0, 0, 0))
        full.paste(Image.fromarray(pixels), (layer.x, layer.y))
        out = Image.alpha_composite(out, full)
    return np.asarray(out)


def over_reference(stack: LayerStack) -> np.ndarray:
    """Float64 formula reference: C_i = a_i * RGB_i + (1 - a_i) * C_{i-1}, premultiplied, then straight."""
    h, w = stack.height, stack.width
    rgb, alpha = np.zeros((h, w, 3)), np.zeros((h, w))
    for layer in stack.layers:
        if not layer.visible:
            continue
        full = np.zeros((h, w, 4))
        x0, y0 = max(layer.x, 0), max(layer.y, 0)
        x1, y1 = min(layer.x + layer.width, w), min(layer.y + layer.height, h)
        if x1 > x0 and y1 > y0:
            full[y0:y1, x0:x1] = layer.pixels[y0 - layer.y : y1 - layer.y, x0 - layer.x : x1 - layer.x] / 255.0
        a = full[..., 3] * layer.opacity
        rgb = full[..., :3] * a[..., None] + rgb * (1 - a[..., None])
        alpha = a + alpha * (1 - a)
    straight = np.divide(rgb, alpha[..., None], out=np.zeros_like(rgb), where=alpha[..., None] > 0)
    return np.concatenate([straight, alpha[..., None]], axis=-1) * 255.0
