"""What the editor shows: each layer scaled down for the browser's canvas (which also draws the layer panel's
thumbnails from them) and the flattened composite over a checkerboard (preview).

numpy + Pillow only. The canvas gets one downscaled RGBA image per layer (the long side of the document at
most `PREVIEW_SIDE`), cached per layer pixels, so a move re-sends nothing and an edit re-encodes only the
layers it changed; the full-resolution layers stay on the server. Previews are opaque RGB (transparency
shown as a grey checkerboard).
"""

from __future__ import annotations

import base64
import functools
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from layered.stack import LayerStack

PREVIEW_SIDE = 1024  # the canvas's layers: the long side of the document at most this
FLAT_SIDE = 512  # the flattened preview (a side panel): smaller, so that every edit can afford it
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


class LayerPreviews:
    """Downscaled copies of layers for the canvas, keyed by pixels object and scale; bounded, oldest dropped.

    Each copy has a short id (unique within the cache) that the browser keys its images by, and its PNG as a
    data URL, encoded once."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: dict[tuple[int, float], tuple[np.ndarray, str, np.ndarray]] = {}
        self._urls: dict[str, str] = {}
        self._count = 0

    def get(self, pixels: np.ndarray, factor: float) -> tuple[str, np.ndarray]:
        """(id, small RGBA) of `pixels` scaled by `factor` (box filter; at least 1 x 1)."""
        hit = self._items.get((id(pixels), factor))
        if hit is not None and hit[0] is pixels:  # the pixels ref guards against id reuse
            return hit[1], hit[2]
        height, width = pixels.shape[:2]
        small = shrink(pixels, (max(1, round(width * factor)), max(1, round(height * factor))))
        self._count += 1
        key = f"p{self._count}"
        if len(self._items) >= self.capacity:
            _, old_key, _ = self._items.pop(next(iter(self._items)))
            self._urls.pop(old_key, None)
        self._items[(id(pixels), factor)] = (pixels, key, small)
        return key, small

    def data_url(self, key: str, small: np.ndarray) -> str:
        """The PNG data URL of a preview (fast compression: it crosses localhost, not the internet)."""
        url = self._urls.get(key)
        if url is None:
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(small), "RGBA").save(buffer, "PNG", compress_level=1)
            url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
            self._urls[key] = url
        return url

    def data_urls(self, items: list[tuple[str, np.ndarray]]) -> dict[str, str]:
        """{id: data URL} of several previews, encoded on every core (Pillow's encoder releases the GIL): a
        document's first view encodes all its layers."""
        if len(items) < 2:
            return {key: self.data_url(key, small) for key, small in items}
        with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
            urls = pool.map(lambda item: self.data_url(*item), items)
            return dict(zip((key for key, _ in items), urls, strict=True))


def preview_factor(width: int, height: int, max_side: int = PREVIEW_SIDE) -> float:
    """The scale of the canvas previews of a `width` x `height` document (1.0 when it fits)."""
    return fit(width, height, max_side)[0] / width


def composite_of_previews(stack: LayerStack, previews: LayerPreviews, factor: float) -> np.ndarray:
    """The stack's composite at `factor`, made from the cached layer previews (visible layers, opacity applied),
    over the checkerboard: the preview of a big document without compositing it at full resolution."""
    width, height = max(1, round(stack.width * factor)), max(1, round(stack.height * factor))
    canvas = Image.new("RGBA", (width, height))
    for layer in stack.layers:
        if not layer.visible or layer.is_empty or layer.opacity <= 0:
            continue
        _, small = previews.get(layer.pixels, factor)
        if layer.opacity < 1:
            small = small.copy()
            small[..., 3] = np.round(small[..., 3] * layer.opacity).astype(np.uint8)
        x, y = round(layer.x * factor), round(layer.y * factor)
        left, top = max(0, -x), max(0, -y)  # Pillow's destination must be inside the canvas
        right, bottom = min(small.shape[1], width - x), min(small.shape[0], height - y)
        if right > left and bottom > top:
            part = Image.fromarray(np.ascontiguousarray(small[top:bottom, left:right]), "RGBA")
            canvas.alpha_composite(part, dest=(x + left, y + top))
    return on_checkerboard(np.asarray(canvas))
