"""Layer edits: small pure functions `f(stack, index, ...) -> LayerStack` that return a new stack.

No edit mutates its input. `index` counts bottom-first (0 is the background) and may be negative, as
in Python lists; an index outside the stack raises IndexError. Geometry edits resample premultiplied
(`layered.pixels`), so soft edges keep their colour, and re-crop the result to its content.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageColor

from layered.fileio import MAX_PIXELS, to_rgba_array
from layered.pixels import resize_rgba, transform_rgba
from layered.stack import Layer, LayerStack, composite

BICUBIC = Image.Resampling.BICUBIC


# ---- helpers -------------------------------------------------------------------------------------


def _index(stack: LayerStack, index: int, what: str = "layer index") -> int:
    """`index` normalised to 0..n-1; IndexError with the valid range when it is outside the stack."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {index!r}")
    n = len(stack.layers)
    if not -n <= index < n:
        valid = f"0..{n - 1}" if n else "none, the stack is empty"
        raise IndexError(f"{what} {index} is out of range for a stack of {n} layers (valid: {valid})")
    return int(index) % n


def _with_layer(stack: LayerStack, index: int, layer: Layer) -> LayerStack:
    layers = list(stack.layers)
    layers[index] = layer
    return stack.replace(layers=tuple(layers))


def _placed(layer: Layer, pixels: np.ndarray, x: int, y: int) -> Layer:
    """`layer` with new `pixels` whose top-left sits at canvas (x, y), cropped to its alpha content."""
    cropped = Layer.from_canvas(pixels, layer.name)
    if cropped.is_empty:
        return layer.replace(pixels=cropped.pixels, x=x, y=y)
    return layer.replace(pixels=cropped.pixels, x=x + cropped.x, y=y + cropped.y)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ValueError(f"the edited layer would be {width} x {height}, larger than {MAX_PIXELS} pixels")


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


# ---- placement and geometry ----------------------------------------------------------------------


def move(stack: LayerStack, index: int, dx: int = 0, dy: int = 0) -> LayerStack:
    """Shift layer `index` by (dx, dy) pixels; its pixels are untouched."""
    i = _index(stack, index)
    layer = stack.layers[i]
    return _with_layer(stack, i, layer.replace(x=layer.x + int(dx), y=layer.y + int(dy)))


def move_to(stack: LayerStack, index: int, x: int, y: int) -> LayerStack:
    """Place the top-left corner of layer `index` at canvas (x, y)."""
    i = _index(stack, index)
    return _with_layer(stack, i, stack.layers[i].replace(x=int(x), y=int(y)))


def scale(
    stack: LayerStack,
    index: int,
    sx: float,
    sy: float | None = None,
    *,
    anchor: tuple[float, float] | None = None,
    resample: int = BICUBIC,
) -> LayerStack:
    """Resize layer `index` by (sx, sy) (sy defaults to sx), premultiplied, keeping canvas point `anchor`
    (default: the layer's centre) fixed. Sizes are rounded to whole pixels, at least 1."""
    i = _index(stack, index)
    sx = _positive(sx, "sx")
    sy = sx if sy is None else _positive(sy, "sy")
    layer = stack.layers[i]
    if layer.is_empty:
        return stack
    width, height = max(1, round(layer.width * sx)), max(1, round(layer.height * sy))
    _check_size(width, height)
    ax, ay = anchor if anchor is not None else (layer.x + layer.width / 2, layer.y + layer.height / 2)
    # the factors actually applied after rounding the size, so the anchor stays put as closely as it can
    fx, fy = width / layer.width, height / layer.height
    x, y = round(ax + (layer.x - ax) * fx), round(ay + (layer.y - ay) * fy)
    return _with_layer(stack, i, _placed(layer, resize_rgba(layer.pixels, (width, height), resample), x, y))


def rotate(stack: LayerStack, index: int, degrees: float, *, resample: int = BICUBIC) -> LayerStack:
    """Rotate layer `index` counter-clockwise by `degrees` about its centre, premultiplied.

    The layer's box grows (or shrinks) to hold every rotated pixel and is then cropped to content. The
    centre stays put to within half a pixel (exactly when old and new box sizes have the same parity);
    half-pixel shifts are not resampled, so quarter turns are lossless.
    """
    i = _index(stack, index)
    degrees = float(degrees)
    if not math.isfinite(degrees):
        raise ValueError(f"degrees must be finite, got {degrees}")
    layer = stack.layers[i]
    if layer.is_empty:
        return stack
    w, h = layer.width, layer.height
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    width = max(1, math.ceil(abs(w * cos) + abs(h * sin) - 1e-6))
    height = max(1, math.ceil(abs(w * sin) + abs(h * cos) - 1e-6))
    _check_size(width, height)
    # PIL's affine maps each output point to the input point it samples; about the two centres, a
    # counter-clockwise turn on screen (y pointing down) samples at (cos X - sin Y, sin X + cos Y).
    a, b, d, e = cos, -sin, sin, cos
    data = (a, b, w / 2 - a * width / 2 - b * height / 2, d, e, h / 2 - d * width / 2 - e * height / 2)
    pixels = transform_rgba(layer.pixels, (width, height), resample, method=Image.Transform.AFFINE, data=data)
    x, y = layer.x + (w - width) // 2, layer.y + (h - height) // 2
    return _with_layer(stack, i, _placed(layer, pixels, x, y))


def flip(stack: LayerStack, index: int, direction: str = "horizontal") -> LayerStack:
    """Mirror layer `index` in place: "horizontal" (left-right) or "vertical" (top-bottom)."""
    i = _index(stack, index)
    axes = {"horizontal": 1, "h": 1, "vertical": 0, "v": 0}
    if direction not in axes:
        raise ValueError(f"flip direction must be 'horizontal' or 'vertical', got {direction!r}")
    layer = stack.layers[i]
    return _with_layer(stack, i, layer.replace(pixels=np.flip(layer.pixels, axis=axes[direction])))


# ---- colour and properties -----------------------------------------------------------------------


def recolor(
    stack: LayerStack,
    index: int,
    *,
    hue: float = 0.0,
    saturation: float = 1.0,
    brightness: float = 1.0,
    tint: str | Sequence[int] | None = None,
    tint_strength: float = 0.0,
) -> LayerStack:
    """Recolour layer `index` in HSV: hue turned by `hue` degrees, S and V multiplied by `saturation` and
    `brightness` (clipped to 1), then RGB mixed toward `tint` (an (r, g, b) in 0..255 or a CSS colour
    such as "#ff8800") by `tint_strength` in [0, 1]. Alpha is untouched."""
    i = _index(stack, index)
    if saturation < 0 or brightness < 0:
        raise ValueError(f"saturation and brightness must be >= 0, got {saturation} and {brightness}")
    if not 0.0 <= tint_strength <= 1.0:
        raise ValueError(f"tint_strength must be in [0, 1], got {tint_strength}")
    layer = stack.layers[i]
    # A per-colour map: transform each distinct colour once (flat graphics have few of them).
    keys = layer.pixels[..., :3].astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    distinct, inverse = np.unique(keys.ravel(), return_inverse=True)
    rgb = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], axis=-1) / 255.0
    hsv = rgb_to_hsv(rgb)
    hsv[..., 0] = (hsv[..., 0] + float(hue) / 360.0) % 1.0
    hsv[..., 1] = np.minimum(hsv[..., 1] * saturation, 1.0)
    hsv[..., 2] = np.minimum(hsv[..., 2] * brightness, 1.0)
    rgb = hsv_to_rgb(hsv)
    if tint is not None and tint_strength > 0:
        color = ImageColor.getrgb(tint) if isinstance(tint, str) else tuple(tint)
        if len(color) < 3 or not all(0 <= c <= 255 for c in color[:3]):
            raise ValueError(f"tint must be an (r, g, b) colour with components in 0..255, got {tint!r}")
        rgb = rgb * (1.0 - tint_strength) + np.asarray(color[:3], np.float64) / 255.0 * tint_strength
    mapped = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    pixels = layer.pixels.copy()
    pixels[..., :3] = mapped[inverse].reshape(keys.shape + (3,))
    return _with_layer(stack, i, layer.replace(pixels=pixels))


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Vectorised `colorsys.rgb_to_hsv` on a ... x 3 float array in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(high == r, (g - b) / safe, np.where(high == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(chroma > 0, (hue / 6.0) % 1.0, 0.0)
    sat = np.divide(chroma, high, out=np.zeros_like(high), where=high > 0)
    return np.stack([hue, sat, high], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Vectorised `colorsys.hsv_to_rgb` on a ... x 3 float array in [0, 1]."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = sector.astype(np.int64) % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = [np.choose(sector, [c[k] for c in choices]) for k in range(3)]
    return np.stack(channels, axis=-1)


def set_opacity(stack: LayerStack, index: int, opacity: float) -> LayerStack:
    """Set the opacity (0..1) of layer `index`."""
    i = _index(stack, index)
    opacity = float(opacity)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    return _with_layer(stack, i, stack.layers[i].replace(opacity=opacity))


def set_visible(stack: LayerStack, index: int, visible: bool) -> LayerStack:
    """Show (True) or hide (False) layer `index`."""
    i = _index(stack, index)
    return _with_layer(stack, i, stack.layers[i].replace(visible=bool(visible)))


def show(stack: LayerStack, index: int) -> LayerStack:
    """Make layer `index` visible."""
    return set_visible(stack, index, True)


def hide(stack: LayerStack, index: int) -> LayerStack:
    """Hide layer `index` (kept in the stack, left out of the composite)."""
    return set_visible(stack, index, False)


def rename(stack: LayerStack, index: int, name: str) -> LayerStack:
    """Rename layer `index` (the name is sanitised only when it becomes a file name)."""
    i = _index(stack, index)
    return _with_layer(stack, i, stack.layers[i].replace(name=str(name)))


# ---- stack structure -----------------------------------------------------------------------------


def reorder(stack: LayerStack, index: int, position: int) -> LayerStack:
    """Move layer `index` so that it ends at `position` (bottom-first); the others keep their order."""
    i = _index(stack, index)
    j = _index(stack, position, "position")
    layers = list(stack.layers)
    layers.insert(j, layers.pop(i))
    return stack.replace(layers=tuple(layers))


def delete(stack: LayerStack, index: int) -> LayerStack:
    """Remove layer `index`."""
    i = _index(stack, index)
    return stack.replace(layers=stack.layers[:i] + stack.layers[i + 1 :])


def duplicate(stack: LayerStack, index: int, name: str | None = None) -> LayerStack:
    """Insert a copy of layer `index` just above it, named `name` (default: "<name> copy")."""
    i = _index(stack, index)
    layer = stack.layers[i]
    copy = layer.replace(name=f"{layer.name} copy" if name is None else str(name))
    return stack.replace(layers=stack.layers[: i + 1] + (copy,) + stack.layers[i + 1 :])


def merge_down(stack: LayerStack, index: int) -> LayerStack:
    """Merge layer `index` into the layer below it; the stack composites as before.

    Opacities are baked into the merged pixels (opacity 1). A hidden layer contributes nothing and
    the merged layer is visible if either was; when both are hidden, both are merged and it stays
    hidden. It keeps the lower layer's name and its content off the canvas (unless the two layers'
    joint box exceeds the pixel limit, in which case it is cut to the canvas).
    """
    i = _index(stack, index)
    if i == 0:
        raise ValueError("layer 0 is the bottom layer: there is no layer below it to merge into")
    lower, upper = stack.layers[i - 1], stack.layers[i]
    visible = lower.visible or upper.visible
    parts = [p for p in (lower, upper) if p.visible or not visible]
    parts = [p for p in parts if not p.is_empty and p.opacity > 0]
    if not parts:
        merged = lower.replace(pixels=np.zeros((0, 0, 4), np.uint8), x=0, y=0, opacity=1.0, visible=visible)
    else:
        left, top = min(p.x for p in parts), min(p.y for p in parts)
        right, bottom = max(p.x + p.width for p in parts), max(p.y + p.height for p in parts)
        if (right - left) * (bottom - top) > MAX_PIXELS:
            left, top, right, bottom = max(left, 0), max(top, 0), min(right, stack.width), min(bottom, stack.height)
        shifted = [p.replace(x=p.x - left, y=p.y - top, visible=True) for p in parts]
        pixels = composite(shifted, max(right - left, 1), max(bottom - top, 1))
        merged = _placed(lower.replace(opacity=1.0, visible=visible), pixels, left, top)
    return stack.replace(layers=stack.layers[: i - 1] + (merged,) + stack.layers[i + 1 :])


def replace_pixels(
    stack: LayerStack,
    index: int,
    image: np.ndarray | Image.Image,
    *,
    at: tuple[int, int] | str | None = None,
) -> LayerStack:
    """Give layer `index` new pixels (an RGBA/RGB/grey uint8 array or a PIL image), cropped to content.

    `at` places the image's top-left corner: None keeps the layer's offset, "center" centres the image
    on the old layer's centre, (x, y) puts it there. Name, opacity and visibility are kept.
    """
    i = _index(stack, index)
    pixels = _rgba(image)
    _check_size(pixels.shape[1], pixels.shape[0])
    layer = stack.layers[i]
    if at is None:
        x, y = layer.x, layer.y
    elif isinstance(at, str):
        if at != "center":
            raise ValueError(f"at must be None, 'center' or (x, y), got {at!r}")
        x = layer.x + (layer.width - pixels.shape[1]) // 2
        y = layer.y + (layer.height - pixels.shape[0]) // 2
    else:
        x, y = (int(v) for v in at)
    return _with_layer(stack, i, _placed(layer, pixels, x, y))


def _rgba(image: np.ndarray | Image.Image) -> np.ndarray:
    """H x W x 4 uint8 from a PIL image or a uint8 array (H x W grey, H x W x 3 RGB or H x W x 4 RGBA)."""
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"image is {image.width} x {image.height}, larger than {MAX_PIXELS} pixels")
        return to_rgba_array(image)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"pixel arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"pixel arrays must be H x W, H x W x 3 or H x W x 4, got shape {array.shape}")
    if array.shape[2] == 3:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    return array
