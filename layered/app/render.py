"""What the editor shows: the composite over a checkerboard (preview) and one small thumbnail per layer.

numpy + Pillow only. Previews are opaque RGB (transparency shown as a grey checkerboard), scaled down so
the long side is at most `max_side`; thumbnails are cached per layer value, so an edit re-renders only
the layers it changed.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from layered.stack import Layer, LayerStack

PREVIEW_SIDE = 1024
THUMB_SIDE = 96
CHECKER_CELL = 8
CHECKER_LIGHT, CHECKER_DARK = 255, 204


def checkerboard(width: int, height: int, cell: int = CHECKER_CELL) -> np.ndarray:
    """H x W grey levels (uint8) of a checkerboard with `cell`-pixel squares, light at the top-left."""
    ys = (np.arange(height) // cell)[:, None]
    xs = (np.arange(width) // cell)[None, :]
    return np.where((ys + xs) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _board(width: int, height: int, cell: int) -> Image.Image:
    return Image.fromarray(checkerboard(width, height, cell)).convert("RGBA")


def on_checkerboard(rgba: np.ndarray, cell: int = CHECKER_CELL) -> np.ndarray:
    """H x W x 3 uint8: straight-alpha `rgba` composited "over" a checkerboard (Pillow, C speed)."""
    height, width = rgba.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    return np.asarray(Image.alpha_composite(_board(width, height, cell), image).convert("RGB"))


def fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down (never up) so that the long side is at most `max_side`, at least 1 x 1."""
    factor = min(1.0, max_side / max(width, height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def shrink(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGBA pixels box-filtered down to `size` (Pillow resamples RGBA premultiplied: no dark fringes)."""
    if rgba.shape[1::-1] == tuple(size):
        return rgba
    image = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    return np.asarray(image.resize(size, Image.Resampling.BOX))


def preview(rgba: np.ndarray, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """The display image of a full-canvas RGBA array: scaled to fit `max_side`, over the checkerboard."""
    height, width = rgba.shape[:2]
    return on_checkerboard(shrink(rgba, fit(width, height, max_side)))


class ThumbnailCache:
    """Thumbnails of layers keyed by layer value (pixels object, placement, opacity); bounded, oldest dropped."""

    def __init__(self, side: int = THUMB_SIDE, capacity: int = 256) -> None:
        self.side = side
        self.capacity = capacity
        self._items: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, stack: LayerStack, index: int) -> np.ndarray:
        """The thumbnail of layer `index`: the layer alone, in place on the scaled canvas, over a checkerboard."""
        layer = stack.layers[index]
        key = (id(layer.pixels), layer.x, layer.y, layer.opacity, stack.width, stack.height)
        hit = self._items.get(key)
        if hit is not None and hit[0] is layer.pixels:  # the pixels ref guards against id reuse
            return hit[1]
        thumb = thumbnail(layer, stack.width, stack.height, self.side)
        if len(self._items) >= self.capacity:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (layer.pixels, thumb)
        return thumb


def thumbnail(layer: Layer, width: int, height: int, side: int = THUMB_SIDE) -> np.ndarray:
    """Layer on its canvas scaled to fit `side` (opacity applied, visibility ignored), over a checkerboard."""
    tw, th = fit(width, height, side)
    factor = tw / width
    canvas = np.zeros((th, tw, 4), np.uint8)
    if not layer.is_empty:
        size = max(1, round(layer.width * factor)), max(1, round(layer.height * factor))
        pixels = shrink(layer.pixels, size)
        small = Layer(pixels, round(layer.x * factor), round(layer.y * factor), opacity=layer.opacity)
        canvas = LayerStack(tw, th, (small,)).composite()
    return on_checkerboard(canvas, cell=max(2, CHECKER_CELL // 2))
