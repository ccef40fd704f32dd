"""Block reductions against a per-tile reference: each tile sliced out of an explicitly padded copy."""

from __future__ import annotations

import numpy as np
import pytest

from layered.blocks import block_reduce

REFERENCE = {"sum": np.sum, "mean": np.mean, "max": np.max}


def _per_tile(grid: np.ndarray, block: int, how: str, pad: str) -> np.ndarray:
    """The reference on the first two axes: pad to whole tiles, then reduce each tile on its own."""
    height, width = grid.shape[:2]
    widths = [(0, -height % block), (0, -width % block)] + [(0, 0)] * (grid.ndim - 2)
    padded = np.pad(grid, widths, mode="edge" if pad == "edge" else "constant")
    rows, cols = padded.shape[0] // block, padded.shape[1] // block
    out = np.empty((rows, cols, *grid.shape[2:]), np.float64)
    for r in range(rows):
        for c in range(cols):
            tile = padded[r * block : (r + 1) * block, c * block : (c + 1) * block].astype(np.float64)
            out[r, c] = REFERENCE[how](tile, axis=(0, 1))
    return out


@pytest.mark.parametrize("how", ["sum", "mean", "max"])
@pytest.mark.parametrize("pad", ["zero", "edge"])
def test_matches_the_per_tile_reference(how, pad):
    rng = np.random.default_rng(5)
    for height, width, block in ((12, 12, 2), (13, 7, 3), (1, 1, 4), (5, 17, 1), (30, 31, 8)):
        channels_last = (rng.random((height, width, 3)) * 2.0 - 1.0).astype(np.float32)  # negative values too
        expected = _per_tile(channels_last, block, how, pad)
        got = block_reduce(channels_last, block, how, pad=pad)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert got.dtype == np.float32
        planar = np.ascontiguousarray(channels_last.transpose(2, 0, 1))  # refine's layout: C x H x W
        got = block_reduce(planar, block, how, axes=(-2, -1), pad=pad)
        np.testing.assert_allclose(got.transpose(1, 2, 0), expected, rtol=1e-5, atol=1e-5)


def test_integer_and_bool_input_count_instead_of_overflowing():
    mask = np.ones((5, 5), bool)
    np.testing.assert_array_equal(block_reduce(mask, 2), [[4, 4, 2], [4, 4, 2], [2, 2, 1]])
    np.testing.assert_array_equal(block_reduce(mask, 2, "mean"), [[1, 1, 0.5], [1, 1, 0.5], [0.5, 0.5, 0.25]])
    np.testing.assert_array_equal(block_reduce(mask, 2, "mean", pad="edge"), np.ones((3, 3)))
    levels = np.full((4, 4), 200, np.uint8)
    assert block_reduce(levels, 4).item() == 16 * 200
    assert block_reduce(levels, 4, "max").dtype == np.uint8


@pytest.mark.parametrize("bad", [{"how": "median"}, {"pad": "wrap"}, {"block": 0}])
def test_bad_arguments_are_refused(bad):
    arguments = {"block": 2, "how": "sum", "pad": "zero", **bad}
    with pytest.raises(ValueError):
        block_reduce(np.zeros((4, 4)), arguments.pop("block"), **arguments)
