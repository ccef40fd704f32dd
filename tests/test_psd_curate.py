"""Curation rules: visibility, dropping, merging non-overlapping layers, premultiplied downscale."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import over_reference
from PIL import Image

from layered.psd.errors import Rejected
from layered.stack import Layer, LayerStack
from psd_pipeline.curate import CurationOptions, curate, overlaps, visible_area
from psd_pipeline.fidelity import psnr


def _solid(x, y, w, h, color, *, alpha=255, name=""):
    pixels = np.zeros((h, w, 4), np.uint8)
    pixels[..., :3] = color
    pixels[..., 3] = alpha
    return Layer(pixels, x, y, name)


def test_visible_area_by_hand():
    bottom = _solid(0, 0, 10, 10, (255, 0, 0), name="bottom")
    half = _solid(0, 0, 5, 10, (0, 255, 0), alpha=128, name="half")
    stack = LayerStack(10, 10, (bottom, half))
    areas = visible_area(stack)
    assert areas[1] == pytest.approx(50 * 128 / 255)
    assert areas[0] == pytest.approx(50 + 50 * (1 - 128 / 255))


def test_covered_layer_is_dropped_and_composite_kept():
    hidden = _solid(2, 2, 3, 3, (0, 0, 255), name="hidden")
    top = _solid(0, 0, 10, 10, (255, 255, 0), name="top")
    stack = LayerStack(10, 10, (_solid(0, 0, 10, 10, (9, 9, 9)), hidden, top))
    curated = curate(stack, ["pixel"] * 3, CurationOptions())
    assert [layer.name for layer in curated.stack] == ["top"]
    assert len(curated.dropped) == 2
    np.testing.assert_array_equal(curated.stack.composite(), stack.composite())


def test_nothing_visible_is_rejected():
    stack = LayerStack(4, 4, (_solid(0, 0, 4, 4, (1, 2, 3), alpha=0),))
    with pytest.raises(Rejected, match="nothing-visible"):
        curate(stack, ["pixel"], CurationOptions())


def test_merge_non_overlapping_down_to_max_keeps_the_image(rng):
    layers = [_solid(0, 0, 40, 40, (200, 200, 200), name="bg")]
    for i in range(8):  # eight disjoint tiles, semi-transparent
        x, y = (i % 4) * 10, (i // 4) * 10
        layers.append(_solid(x, y, 8, 8, rng.integers(0, 256, 3), alpha=int(rng.integers(60, 256)), name=f"t{i}"))
    stack = LayerStack(40, 40, tuple(layers))
    curated = curate(stack, ["pixel"] * len(layers), CurationOptions(max_layers=3))
    assert len(curated.stack) == 3
    assert curated.stack[0].name == "bg"  # the background overlaps everything: never merged
    for group in curated.groups:  # only mutually disjoint layers were merged together
        for a in group:
            for b in group:
                assert a == b or not overlaps(layers[a], layers[b])
    # merging disjoint layers is exact: same image as the float64 reference of the original stack
    reference = over_reference(stack)
    assert np.abs(curated.stack.composite().astype(float) - reference).max() <= 1.0
    assert sorted(i for g in curated.groups for i in g) == list(range(len(layers)))


def test_overlapping_stack_over_the_limit_is_rejected():
    layers = tuple(_solid(i, i, 10, 10, (i * 20, 0, 0), name=f"L{i}") for i in range(5))
    with pytest.raises(Rejected, match="too-many-layers"):
        curate(LayerStack(20, 20, layers), ["pixel"] * 5, CurationOptions(max_layers=2))


def test_downscale_is_premultiplied_and_close_to_the_downscaled_image():
    big = LayerStack(
        64,
        48,
        (_solid(0, 0, 64, 48, (0, 0, 255)), _solid(10, 10, 30, 20, (255, 0, 0), alpha=200)),
    )
    curated = curate(big, ["pixel", "pixel"], CurationOptions(max_side=32))
    assert curated.stack.size == (32, 24)
    assert curated.scale == pytest.approx(0.5)
    # independent reference: PIL box-downscale of the flattened image
    expected = np.asarray(Image.fromarray(big.composite()).resize((32, 24), Image.Resampling.BOX))
    assert psnr(curated.stack.composite(), expected) > 45
    # a lone semi-transparent edge pixel has no dark fringe: its colour stays pure red
    red = curated.stack[1].pixels
    assert red[..., 3].max() > 0
    assert (red[red[..., 3] > 0][:, :3] == (255, 0, 0)).all()
