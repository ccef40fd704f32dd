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


def colour_managed_composite(psd) -> np.ndarray:
    """Photoshop's stored composite in sRGB, built here from psd-tools and Pillow's ImageCms alone.

    Opaque: psd-tools' own colour-managed `topil()` (the document's ICC profile, perceptual intent).
    With transparency: psd-tools un-mattes the white background after the profile transform, in sRGB,
    where Photoshop matted it in the document's space; here the un-matted document-space image
    (`topil(apply_icc=False)`) goes through the same profile, and its alpha is kept.
    H x W x 4 when the composite has alpha, else H x W x 3 (flattened over white).
    """
    import io

    from PIL import ImageCms
    from psd_tools.constants import Resource

    managed = psd.topil()
    if "A" not in managed.mode:
        return np.asarray(managed.convert("RGB"))
    raw = psd.topil(apply_icc=False)
    alpha = raw.getchannel("A")
    base = raw.convert(raw.mode.replace("A", ""))
    if Resource.ICC_PROFILE in psd.image_resources:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(bytes(psd.image_resources.get_data(Resource.ICC_PROFILE))))
        base = ImageCms.profileToProfile(base, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.dstack([np.asarray(base.convert("RGB")), np.asarray(alpha)])


def alpha_over_psnr(layers: list[np.ndarray], reference: np.ndarray) -> float:
    """PSNR (dB) of PIL's alpha_composite chain of full-canvas RGBA layers against a reference.

    A 3-channel reference is a flattened composite (the image over white); a 4-channel one is compared
    premultiplied.
    """
    out = Image.new("RGBA", (layers[0].shape[1], layers[0].shape[0]), (0, 0, 0, 0))
    for layer in layers:
        out = Image.alpha_composite(out, Image.fromarray(layer))
    ours = np.asarray(out).astype(np.float64) / 255.0
    ref = reference.astype(np.float64) / 255.0
    if ref.shape[2] == 3:
        ours = ours[..., :3] * ours[..., 3:] + (1 - ours[..., 3:])
    else:
        ours[..., :3] *= ours[..., 3:]
        ref[..., :3] *= ref[..., 3:]
    mse = np.mean((ours - ref) ** 2)
    return 99.0 if mse < 1e-10 else float(10 * np.log10(1 / mse))
