"""Pixel helpers: bounding boxes, premultiplied resampling and compositing over a colour."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from layered.pixels import alpha_bbox, composite_over, premultiply, resize_rgba, unpremultiply


def test_alpha_bbox():
    pixels = np.zeros((10, 12, 4), np.uint8)
    assert alpha_bbox(pixels) is None
    pixels[2:5, 3:9, 3] = 1
    assert alpha_bbox(pixels) == (3, 2, 9, 5)


def test_premultiply_round_trip(rng):
    pixels = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    assert np.array_equal(unpremultiply(premultiply(pixels)), pixels)


def test_resize_has_no_dark_fringe():
    # White opaque square on fully transparent *black*: resampling straight RGB pulls the black of
    # clear pixels into the edge; premultiplied resampling keeps every visible pixel white.
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[2:6, 2:6] = 255
    ours = resize_rgba(pixels, (5, 5), Image.Resampling.BILINEAR)
    visible = ours[..., 3] > 0
    assert visible.any() and (ours[..., :3][visible] >= 254).all()
    naive = np.stack(
        [np.asarray(Image.fromarray(pixels[..., c]).resize((5, 5), Image.Resampling.BILINEAR)) for c in range(4)], -1
    )
    assert (naive[..., :3][naive[..., 3] > 0] < 200).any()  # the fringe this avoids


def test_resize_matches_pillow_premultiplied_rgba_resize(rng):
    # Pillow resamples RGBA premultiplied internally (in 8 bits): an independent reference.
    pixels = rng.integers(0, 256, (24, 20, 4), dtype=np.uint8)
    ours = resize_rgba(pixels, (13, 17), Image.Resampling.BILINEAR).astype(int)
    ref = np.asarray(Image.fromarray(pixels).resize((13, 17), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(ours[..., 3] - ref[..., 3]).max() <= 1
    solid = ref[..., 3] >= 64
    assert np.abs(ours[..., :3] - ref[..., :3])[solid].max() <= 3


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0), (17, 200, 99)])
def test_composite_over_is_the_psd_formula_and_matches_pil(background):
    colour, alpha = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")  # every (c, a) pair
    pixels = np.stack([colour, 255 - colour, colour, alpha], axis=-1).astype(np.uint8)
    out = composite_over(pixels, background)
    bg = np.array(background)
    expected = (pixels[..., :3].astype(int) * alpha[..., None] + bg * (255 - alpha[..., None]) + 127) // 255
    np.testing.assert_array_equal(out, expected)
    pil = Image.alpha_composite(Image.new("RGBA", (256, 256), (*background, 255)), Image.fromarray(pixels))
    assert np.abs(out.astype(int) - np.asarray(pil)[..., :3]).max() <= 1  # PIL rounds its own way
    exact = composite_over(pixels, background, dtype=np.float64)
    assert exact.dtype == np.float64 and 0.0 <= exact.min() and exact.max() <= 1.0
    np.testing.assert_allclose(
        exact * 255, (pixels[..., :3] * alpha[..., None] + bg * (255 - alpha[..., None])) / 255, atol=1e-3
    )
