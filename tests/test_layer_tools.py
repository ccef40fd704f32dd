"""Automatic layer count (pruning) and recursive splicing on hand-built stacks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import over_reference

from layered.layer_tools import prune_layers, splice_layers, split_layer
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
