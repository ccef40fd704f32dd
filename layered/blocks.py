"""Block reductions of pixel grids: the sum, mean or maximum of every f x f tile (classic's fill, refine's grid).

scipy.ndimage has no block reduction (its filters give every pixel's window, not one value a tile), so this is
the project's one. Numpy only, by strided slices: f * f whole-array operations, fast for the small f used here.
"""

from __future__ import annotations

import numpy as np

REDUCTIONS = ("sum", "mean", "max")
PADDING = ("zero", "edge")


def block_reduce(
    values: np.ndarray, block: int, how: str = "sum", *, axes: tuple[int, int] = (0, 1), pad: str = "zero"
) -> np.ndarray:
    """`how` ("sum", "mean" or "max") over block x block tiles of `axes`; the other axes are kept.

    A partial tile at the bottom/right edge is completed with zeros (`pad="zero"`) or by repeating the last
    row/column (`pad="edge"`). "mean" divides by block * block. Integer and bool input sum as int64 and
    average as float64; "max" and float input keep their dtype.
    """
    if how not in REDUCTIONS or pad not in PADDING:
        raise ValueError(f"how must be one of {REDUCTIONS} and pad one of {PADDING}, got {how!r}, {pad!r}")
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    grid = np.moveaxis(values, axes, (0, 1))
    if how != "max" and not np.issubdtype(grid.dtype, np.floating):
        grid = grid.astype(np.float64 if how == "mean" else np.int64)
    height, width = grid.shape[:2]
    partial = height % block or width % block
    if partial and (pad == "edge" or how == "max"):  # a sum or mean skips the missing cells: they add zero
        widths = [(0, -height % block), (0, -width % block)] + [(0, 0)] * (grid.ndim - 2)
        grid = np.pad(grid, widths, mode="edge" if pad == "edge" else "constant")
    combine = np.maximum if how == "max" else np.add
    out = grid[::block, ::block].copy()  # the first cell of every tile, partial ones included
    for i in range(block):
        for j in range(block):
            if i or j:
                part = grid[i::block, j::block]
                target = out[: part.shape[0], : part.shape[1]]
                combine(target, part, out=target)
    if how == "mean":
        out /= block * block
    return np.ascontiguousarray(np.moveaxis(out, (0, 1), axes))
