"""Editor previews and thumbnails against independent references (a float "over" formula, PIL paste + resize)."""

from __future__ import annotations

import numpy as np
from helpers import random_stack
from PIL import Image

from layered.app import render
from layered.stack import Layer, LayerStack


def reference_checkerboard(width: int, height: int, cell: int) -> np.ndarray:
    out = np.empty((height, width), np.uint8)
    for yy in range(height):
        for xx in range(width):
            out[yy, xx] = 255 if ((yy // cell) + (xx // cell)) % 2 == 0 else 204
    return out


def over_board(rgba: np.ndarray, cell: int) -> np.ndarray:
    """Float formula: rgb * a + board * (1 - a)."""
    board = reference_checkerboard(rgba.shape[1], rgba.shape[0], cell).astype(np.float64)[..., None]
    alpha = rgba[..., 3:4] / 255.0
    return rgba[..., :3] * alpha + board * (1.0 - alpha)


def test_checkerboard_cells():
    assert np.array_equal(render.checkerboard(21, 13, 4), reference_checkerboard(21, 13, 4))


def test_on_checkerboard_is_over(rng):
    rgba = rng.integers(0, 256, (17, 23, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    out = render.on_checkerboard(rgba, cell=4)
    assert out.shape == (17, 23, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(float) - over_board(rgba, 4)).max() <= 1.0
    assert np.array_equal(out[0, 0], [255, 255, 255])  # transparent: the light cell shows
    assert np.array_equal(out[0, 1], rgba[0, 1, :3])  # opaque: the pixel itself


def test_preview_fits_and_keeps_small_images_exact(rng):
    assert render.fit(3000, 1500, 1024) == (1024, 512)
    assert render.fit(300, 200, 1024) == (300, 200)  # never upscaled
    small = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    assert np.abs(render.preview(small).astype(float) - over_board(small, render.CHECKER_CELL)).max() <= 1.0


def test_preview_downscale_has_no_dark_fringe():
    """A red square with a transparent (black-RGB) surround: averaging must be premultiplied."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :33] = (255, 0, 0, 255)  # column 32 is red, so the 2x2 box across 32..33 is half red, half clear
    out = render.shrink(rgba, (32, 32))
    edge = out[5, 16]
    assert edge[3] in (127, 128) and edge[0] >= 250 and edge[1] == edge[2] == 0


def test_thumbnail_matches_pil_paste_and_resize():
    """Thumbnail = the canvas with only that layer (opacity applied), box-resized, over the checkerboard."""
    layer = Layer(np.full((40, 60, 4), (10, 200, 30, 255), np.uint8), x=100, y=20, opacity=0.5)
    thumb = render.thumbnail(layer, 400, 200, side=100)
    assert thumb.shape == (50, 100, 3)
    canvas = Image.new("RGBA", (400, 200))
    faded = np.array(layer.pixels)
    faded[..., 3] = 128
    canvas.paste(Image.fromarray(faded), (100, 20))
    expected = over_board(np.asarray(canvas.resize((100, 50), Image.Resampling.BOX)).astype(np.float64), 4)
    assert np.abs(thumb.astype(float) - expected).max() <= 2.0


def test_thumbnail_cache_reuses_unchanged_layers(rng):
    stack = random_stack(rng, canvas=(64, 48), count=3)
    cache = render.ThumbnailCache(side=32)
    first = [cache.get(stack, i) for i in range(3)]
    moved = stack.replace(layers=(stack.layers[0].replace(x=stack.layers[0].x + 5), *stack.layers[1:]))
    again = [cache.get(moved, i) for i in range(3)]
    assert again[1] is first[1] and again[2] is first[2]
    assert again[0] is not first[0]
    assert np.array_equal(again[0], render.thumbnail(moved.layers[0], 64, 48, 32))


def test_empty_layer_thumbnail_is_plain_checkerboard():
    empty = Layer(np.zeros((0, 0, 4), np.uint8))
    thumb = render.thumbnail(empty, 32, 32, side=16)
    assert np.array_equal(thumb[..., 0], reference_checkerboard(16, 16, 4))
    stack = LayerStack(32, 32, (empty,))
    assert np.array_equal(render.ThumbnailCache(16).get(stack, 0), thumb)
