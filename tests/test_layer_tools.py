"""Automatic layer count (pruning), recursive splicing and the layer-order helpers on hand-built stacks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import over_reference, random_layer

from layered.layer_tools import layers_overlap, occlusion_order, prune_layers, splice_layers, split_layer
from layered.stack import Layer, LayerStack


def _solid(w, h, rgba, x=0, y=0, *, name=""):
    return Layer(np.tile(np.array(rgba, np.uint8), (h, w, 1)), x, y, name)


def test_prune_drops_empty_and_hidden_under_opaque():
    background = _solid(20, 10, (10, 20, 30, 255), name="bg")
    covered = _solid(4, 4, (200, 0, 0, 255), 2, 2, name="covered")  # fully under `top`
    empty = Layer(np.zeros((3, 3, 4), np.uint8), 1, 1, "empty")
    faint = _solid(20, 10, (255, 255, 255, 1), name="faint")  # changes the composite by at most 1 level
    top = _solid(10, 10, (0, 255, 0, 255), 0, 0, name="top")
    stack = LayerStack(20, 10, (background, covered, empty, faint, top))
    pruned, kept = prune_layers(stack, tolerance=3)
    assert [layer.name for layer in pruned] == ["bg", "top"]
    assert kept == [0, 4]
    assert np.abs(over_reference(pruned) - over_reference(stack)).max() <= 3 + 0.5


def test_prune_keeps_layers_that_matter_and_one_layer_minimum():
    stack = LayerStack(8, 8, (_solid(8, 8, (0, 0, 0, 255), name="a"), _solid(2, 2, (255, 0, 0, 255), 3, 3, name="b")))
    assert [layer.name for layer in prune_layers(stack)[0]] == ["a", "b"]
    single = LayerStack(8, 8, (_solid(8, 8, (0, 0, 0, 255), name="a"), _solid(8, 8, (0, 0, 0, 255), name="b")))
    assert len(prune_layers(single)[0]) == 1
    blank = LayerStack(4, 4, (Layer(np.zeros((1, 1, 4), np.uint8)),))
    assert len(prune_layers(blank)[0]) == 0


@pytest.mark.usefixtures("rng")
def test_splice_and_split_keep_other_layers():
    layers = tuple(_solid(6, 6, (i * 40, 0, 0, 255), i, i, name=f"L{i}") for i in range(4))
    stack = LayerStack(12, 12, layers)
    new = (_solid(2, 2, (0, 0, 255, 255), name="n0"), _solid(3, 3, (0, 255, 0, 128), name="n1"))
    out = splice_layers(stack, 2, new)
    assert [layer.name for layer in out] == ["L0", "L1", "n0", "n1", "L3"]
    assert all(out[i] is stack[i] for i in (0, 1)) and out[4] is stack[3]
    with pytest.raises(IndexError):
        splice_layers(stack, 4, new)

    seen = {}

    def halves(rgba):  # a decomposer: left half and right half of the rendered layer, over an opaque plate
        seen["input"] = rgba
        left, right = rgba.copy(), rgba.copy()
        left[:, 6:] = 0
        right[:, :6] = 0
        plate = np.full_like(rgba, 255)
        return LayerStack.from_images([plate, left, right], ["plate", "left", "right"])

    out = split_layer(stack, 1, halves)
    np.testing.assert_array_equal(seen["input"], stack.render_layer(1))
    assert [layer.name for layer in out][:1] == ["L0"] and out[0] is stack[0]
    assert out[-2] is stack[2] and out[-1] is stack[3]
    assert [layer.name for layer in out[1:-2]] == ["L1 / 0", "L1 / 1", "L1 / 2"]
    # clipped to the split layer's silhouette: the opaque plate becomes exactly layer 1's footprint
    assert out[1].bbox == stack[1].bbox
    np.testing.assert_array_equal(
        LayerStack(12, 12, out.layers[1:-2]).composite(), LayerStack(12, 12, (stack[1],)).composite()
    )


def test_occlusion_order_keeps_overlaps_and_puts_larger_lower():
    size = 256

    def square(x, y, side, alpha=255):
        canvas = np.zeros((size, size, 4), np.uint8)
        canvas[y : y + side, x : x + side] = (10, 20, 30, alpha)
        return canvas

    background = np.full((size, size, 4), 255, np.uint8)
    small, big, on_small = square(10, 10, 40), square(120, 120, 100), square(30, 30, 40, 128)
    stack = LayerStack.from_images([background, small, big, on_small], ["bg", "small", "big", "on small"])
    assert occlusion_order(stack) == [0, 2, 1, 3]  # big below small (free); on-small stays above small
    assert occlusion_order(stack, [0, 0, 1, 0]) == [0, 1, 3, 2]  # a higher tier goes above whatever is free


def test_occlusion_order_never_changes_the_composite(rng):
    """Only layers that share no pixel trade places, so the reordered stack looks the same (PIL reference)."""
    for _ in range(20):
        layers = tuple(random_layer(rng, (24, 16), f"L{i}") for i in range(5))
        layers = tuple(layer.replace(pixels=_sparse(layer.pixels, rng)) for layer in layers)
        stack = LayerStack(24, 16, layers)
        order = occlusion_order(stack)
        assert sorted(order) == list(range(5))
        reordered = stack.replace(layers=tuple(stack[i] for i in order))
        np.testing.assert_array_equal(over_reference(reordered), over_reference(stack))


def _sparse(pixels, rng):
    """Most pixels transparent, so that some layers overlap and some do not."""
    out = pixels.copy()
    out[..., 3] *= rng.random(pixels.shape[:2]) < 0.15
    return out


def test_layers_overlap_is_a_shared_pixel_with_alpha(rng):
    """Against the two layers rendered on a canvas that holds them whole (alpha > 0, opacity aside)."""
    a = _solid(4, 4, (0, 0, 0, 255), 2, 2)
    assert layers_overlap(a, _solid(2, 2, (0, 0, 0, 1), 5, 5))  # one corner pixel
    assert not layers_overlap(a, _solid(2, 2, (0, 0, 0, 255), 6, 2))  # touching edges share no pixel
    assert not layers_overlap(a, _solid(4, 4, (0, 0, 0, 0), 2, 2))  # same box, nothing opaque
    seen = set()
    for _ in range(60):
        pair = [random_layer(rng, (20, 12)) for _ in range(2)]  # partly off a 20 x 12 canvas
        pair = [layer.replace(pixels=_sparse(layer.pixels, rng), opacity=1.0) for layer in pair]
        shifted = tuple(layer.replace(x=layer.x + 30, y=layer.y + 20) for layer in pair)
        big = LayerStack(80, 60, shifted)
        shared = bool(((big.render_layer(0)[..., 3] > 0) & (big.render_layer(1)[..., 3] > 0)).any())
        assert layers_overlap(*pair) == shared
        seen.add(shared)
    assert seen == {True, False}
