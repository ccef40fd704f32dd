"""Editor previews against independent references (a float "over" formula, PIL paste + resize, the stack's own
full-size composite)."""

from __future__ import annotations

import base64
import io

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


def test_layer_previews_are_box_resized_and_cached_per_pixels(rng):
    pixels = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
    cache = render.LayerPreviews()
    key, small = cache.get(pixels, 0.5)
    expected = np.asarray(Image.fromarray(pixels, "RGBA").resize((30, 20), Image.Resampling.BOX))
    assert np.array_equal(small, expected)
    assert cache.get(pixels, 0.5)[0] == key  # the same pixels: the same id, not re-made
    assert cache.get(pixels.copy(), 0.5)[0] != key and cache.get(pixels, 0.25)[0] != key
    url = cache.data_url(key, small)
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert url.startswith("data:image/png;base64,") and np.array_equal(np.asarray(decoded), small)


def test_data_urls_of_several_previews_decode_to_each_preview(rng):
    cache = render.LayerPreviews()
    items = [cache.get(rng.integers(0, 256, (8 + 5 * k, 20, 4), dtype=np.uint8), 1.0) for k in range(5)]
    urls = cache.data_urls(items)
    assert list(urls) == [key for key, _ in items]
    for key, small in items:
        decoded = Image.open(io.BytesIO(base64.b64decode(urls[key].split(",", 1)[1])))
        assert np.array_equal(np.asarray(decoded), small)


def test_composite_of_previews_is_the_composite_when_nothing_is_scaled(rng):
    stack = random_stack(rng, canvas=(64, 48), count=4)
    layers = list(stack.layers)
    layers[1] = layers[1].replace(opacity=0.5)
    layers[2] = layers[2].replace(visible=False)
    layers[3] = layers[3].replace(x=-7, y=30)  # partly off the canvas
    stack = stack.replace(layers=tuple(layers))
    out = render.composite_of_previews(stack, render.LayerPreviews(), 1.0)
    assert np.abs(out.astype(float) - over_board(stack.composite().astype(float), render.CHECKER_CELL)).max() <= 2.0


def test_composite_of_previews_of_a_big_document_matches_the_downscaled_composite():
    """Flat shapes (what designs hold): per-layer downscaling then "over" differs only along edges."""
    layers = []
    for colour, alpha, (x, y, w, h) in [
        ((240, 240, 230), 255, (0, 0, 2048, 1536)),
        ((200, 30, 30), 180, (301, 207, 900, 611)),
        ((20, 90, 220), 90, (777, 555, 1001, 803)),
    ]:
        layers.append(Layer(np.full((h, w, 4), (*colour, alpha), np.uint8), x, y))
    stack = LayerStack(2048, 1536, tuple(layers))
    factor = render.preview_factor(stack.width, stack.height)
    assert factor == 0.5
    out = render.composite_of_previews(stack, render.LayerPreviews(), factor)
    assert out.shape == (768, 1024, 3)
    assert np.abs(out.astype(float) - render.preview(stack.composite()).astype(float)).mean() < 1.0
