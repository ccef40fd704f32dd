"""Scores for a predicted layer decomposition against the ground truth: the LayerD protocol (numpy only).

This module is the project's definition of the protocol used by LayerD and Qwen-Image-Layered:

1. Each side is a bottom-first sequence of *visible* layers, each rendered to the full canvas
   (`LayerStack.render_layer`: offset and opacity applied) and read as float straight-alpha RGBA in
   [0, 1]. Hidden layers are left out: they are not part of the image. A fully transparent pixel's
   colour counts as black (our renders store it so).
2. Pair scores, for a predicted layer p and a ground-truth layer g over all canvas pixels:
   `soft_iou(p, g) = sum(min(a_p, a_g)) / sum(max(a_p, a_g))` (1 when both alphas are all zero), and
   `rgb_l1(p, g) = sum(a_g * mean_c |rgb_p - rgb_g|) / sum(a_g)` -- the mean absolute RGB error
   (averaged over the three channels) weighted by the ground truth's alpha, i.e. the mean over pixels
   of |rgb_p - rgb_g| * a_g / mean(a_g); 0 when g is empty. Both lie in [0, 1].
   The pair cost is `rgb_l1 + (1 - soft_iou)`, in [0, 2].
3. Alignment: dynamic time warping over the two sequences. A path runs from (0, 0) to (n-1, m-1)
   by steps (1, 0), (0, 1) or (1, 1), so it is monotone (order-aware: a layer can match only layers
   at a compatible depth) and every layer on both sides is matched at least once; one layer may match
   several consecutive layers of the other side (one-to-many). The path with the least summed cost is
   chosen (on ties, within 1e-6, tracing the path back prefers the diagonal step, then a step back in the
   prediction).
4. Score of an alignment: `rgb_l1` and `soft_iou` averaged over the pairs on the path, each pair
   counting once (so a layer matched to three layers weighs three times).
5. Merges: for k = 1..max_merge, the merge of two adjacent layers -- in the prediction or in the
   ground truth -- that lowers the summed DTW cost most is applied (the upper layer composited over the
   lower with Porter-Duff "over" in float) and the alignment re-scored; on ties (within 1e-6) the first wins,
   prediction before ground truth, bottom pair first. The criterion is the summed cost the alignment
   minimises, so the reported means need not improve at every k. When no merge lowers the cost
   (or both sides are down to one layer), the scores of the last k carry over to the remaining k.
   Merges are cumulative: the row for k is after k merges at most.
6. Several samples: each k is the mean of the per-sample scores at that k (`mean_scores`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from layered.stack import Layer, LayerStack, composite

Scores = list[dict]  # [{"merge": k, "rgb_l1": x, "soft_iou": y}, ...] for k = 0..max_merge

# Bounds on what is scored, per side: visible layers, and canvas pixels they cover in all (64 full layers at
# 1024 x 1024). The merge search is quadratic in the layer count, its memory 16 bytes per layer pixel.
MAX_EVAL_LAYERS = 100
MAX_EVAL_PIXELS = 64 * 1024 * 1024
_TIE = 1e-6  # summed costs closer than this are equal (float32 pixels: rounding must not pick the winner)


@dataclasses.dataclass(frozen=True, eq=False)
class _Layer:
    """A full-canvas layer kept as its content box: planar float32 straight RGB and alpha inside `box`.

    Precomputed for `_pair`: total alpha, and alpha times the mean of the three channels (`weighted`),
    the per-pixel L1 weight x error against a transparent (black) prediction.
    """

    rgb: np.ndarray  # 3 x h x w
    alpha: np.ndarray  # h x w
    box: tuple[int, int, int, int]  # left, top, right, bottom on the canvas; (0, 0, 0, 0) when transparent
    alpha_sum: float = 0.0
    weighted: np.ndarray | None = None
    weighted_sum: float = 0.0

    @classmethod
    def make(cls, rgb: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int]) -> _Layer:
        weighted = rgb[0] + rgb[1]
        weighted += rgb[2]
        weighted *= alpha
        weighted /= 3.0
        return cls(rgb, alpha, box, float(alpha.sum(dtype=np.float64)), weighted, float(weighted.sum(dtype=np.float64)))


def _from_canvas(rgba: np.ndarray, offset: tuple[int, int] = (0, 0)) -> _Layer:
    """Crop an RGBA image (uint8, or float in [0, 1]) placed at `offset` on the canvas to its alpha > 0 box."""
    rgba = np.asarray(rgba)
    alpha = rgba[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return _Layer.make(np.zeros((3, 0, 0), np.float32), np.zeros((0, 0), np.float32), (0, 0, 0, 0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = rgba[top:bottom, left:right].transpose(2, 0, 1).astype(np.float32)
    if rgba.dtype == np.uint8:
        crop /= 255.0
    rgb = np.where(crop[3] > 0, crop[:3], np.float32(0.0))
    dx, dy = offset
    return _Layer.make(rgb, np.ascontiguousarray(crop[3]), (left + dx, top + dy, right + dx, bottom + dy))


def _render(layer: Layer, width: int, height: int) -> _Layer:
    """`LayerStack.render_layer`, pixel for pixel, computed only over the layer's part of the canvas."""
    left, top = max(layer.x, 0), max(layer.y, 0)
    right, bottom = min(layer.x + layer.width, width), min(layer.y + layer.height, height)
    if right <= left or bottom <= top or layer.pixels.size == 0:
        return _from_canvas(np.zeros((1, 1, 4), np.uint8))
    if layer.opacity == 1.0:  # the render is the pixels themselves (colour 0 where alpha is 0: _from_canvas)
        crop = layer.pixels[top - layer.y : bottom - layer.y, left - layer.x : right - layer.x]
        return _from_canvas(crop, (left, top))
    shifted = layer.replace(x=layer.x - left, y=layer.y - top, visible=True)
    return _from_canvas(composite([shifted], right - left, bottom - top), (left, top))


def _union(a: tuple, b: tuple) -> tuple[int, int, int, int]:
    if a[2] <= a[0]:
        return b
    if b[2] <= b[0]:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _embed(layer: _Layer, box: tuple) -> tuple[np.ndarray, np.ndarray]:
    """`layer`'s RGB and alpha on the region `box` (which contains the layer's box), zero elsewhere."""
    left, top, right, bottom = box
    if layer.box == box:
        return layer.rgb, layer.alpha
    rgb = np.zeros((3, bottom - top, right - left), np.float32)
    alpha = np.zeros((bottom - top, right - left), np.float32)
    l0, t0, r0, b0 = layer.box
    if r0 > l0:
        rgb[:, t0 - top : b0 - top, l0 - left : r0 - left] = layer.rgb
        alpha[t0 - top : b0 - top, l0 - left : r0 - left] = layer.alpha
    return rgb, alpha


def _sums(pred: _Layer, gt: _Layer, region: tuple | None = None) -> tuple[float, float]:
    """(sum(min(a_p, a_g)), L1 excess) of two layers over their boxes' intersection (within `region`).

    The excess is sum(a_g * mean_c |rgb_p - rgb_g|) - sum(a_g * mean_c rgb_g): where the prediction is
    transparent both terms are the same, so any region holding the prediction's content gives the same
    value, and both sums add up over disjoint regions (what `_merged_sums` uses).
    """
    left, top = max(pred.box[0], gt.box[0]), max(pred.box[1], gt.box[1])
    right, bottom = min(pred.box[2], gt.box[2]), min(pred.box[3], gt.box[3])
    if region is not None:
        left, top = max(left, region[0]), max(top, region[1])
        right, bottom = min(right, region[2]), min(bottom, region[3])
    if right <= left or bottom <= top:
        return 0.0, 0.0
    ps = np.s_[top - pred.box[1] : bottom - pred.box[1], left - pred.box[0] : right - pred.box[0]]
    gs = np.s_[top - gt.box[1] : bottom - gt.box[1], left - gt.box[0] : right - gt.box[0]]
    a_g = gt.alpha[gs]
    scratch = np.minimum(pred.alpha[ps], a_g)
    low = float(scratch.sum(dtype=np.float64))
    diff = np.empty_like(scratch)  # in place, two buffers: this is the inner loop of the merge search
    np.subtract(pred.rgb[0][ps], gt.rgb[0][gs], out=diff)
    np.abs(diff, out=diff)
    for c in (1, 2):
        np.subtract(pred.rgb[c][ps], gt.rgb[c][gs], out=scratch)
        np.abs(scratch, out=scratch)
        diff += scratch
    diff *= a_g
    error = float(diff.sum(dtype=np.float64)) / 3.0
    return low, error - float(gt.weighted[gs].sum(dtype=np.float64))


def _scores(pred: _Layer, gt: _Layer, sums: tuple[float, float]) -> tuple[float, float]:
    """(rgb_l1, soft_iou) from `_sums`: elsewhere at most one layer is non-zero, so sum(max) = sum(a_p) +
    sum(a_g) - sum(min), and the L1 error there is the ground truth's own `weighted` colour (against black)."""
    low, excess = sums
    high = pred.alpha_sum + gt.alpha_sum - low
    iou = low / high if high > 0 else 1.0
    l1 = max(excess + gt.weighted_sum, 0.0) / gt.alpha_sum if gt.alpha_sum > 0 else 0.0
    return l1, iou


def _pair(pred: _Layer, gt: _Layer) -> tuple[float, float]:
    """(rgb_l1, soft_iou) of two layers."""
    return _scores(pred, gt, _sums(pred, gt))


@dataclasses.dataclass(frozen=True, eq=False)
class _Candidate:
    """A merge over(lower, upper) not made yet, kept small: outside the smaller layer's box it equals the
    other layer (`base`), so only `patch`, the merge inside that box, is computed and stored. `merged` holds
    the whole merge's alpha and weighted sums (what `_scores` reads), without pixels."""

    lower: _Layer
    upper: _Layer
    base: _Layer
    patch: _Layer
    merged: _Layer
    sums: dict = dataclasses.field(default_factory=dict)  # other-side layer -> `_sums` against the merge

    @classmethod
    def make(cls, lower: _Layer, upper: _Layer) -> _Candidate:
        small, base = (upper, lower) if _area(upper.box) <= _area(lower.box) else (lower, upper)
        region = small.box
        patch = _over(_crop(lower, region), _crop(upper, region))
        under = _crop(base, region)
        alpha_sum = base.alpha_sum - under.alpha_sum + patch.alpha_sum
        weighted_sum = base.weighted_sum - under.weighted_sum + patch.weighted_sum
        empty = np.zeros((0, 0), np.float32)
        merged = _Layer(empty[None], empty, _union(lower.box, upper.box), alpha_sum, None, weighted_sum)
        return cls(lower, upper, base, patch, merged)

    def sums_against(self, other: _Layer, known: dict, merged_is_pred: bool) -> tuple[float, float]:
        """`_sums` of the merge against `other`: the base's known sums, its part under the patch replaced."""
        if other not in self.sums:
            pair = (lambda a: (a, other)) if merged_is_pred else (lambda a: (other, a))
            region = self.patch.box if self.patch.box[2] > self.patch.box[0] else None
            whole = known[pair(self.base)]
            old = _sums(*pair(self.base), region) if region else (0.0, 0.0)
            new = _sums(*pair(self.patch))
            self.sums[other] = tuple(w - o + n for w, o, n in zip(whole, old, new, strict=True))
        return self.sums[other]


def _crop(layer: _Layer, region: tuple) -> _Layer:
    """The part of `layer` inside `region` (a view of its pixels, with its own sums)."""
    left, top = max(layer.box[0], region[0]), max(layer.box[1], region[1])
    right, bottom = min(layer.box[2], region[2]), min(layer.box[3], region[3])
    if right <= left or bottom <= top:
        return _from_canvas(np.zeros((1, 1, 4), np.uint8))
    if (left, top, right, bottom) == layer.box:
        return layer
    ys, xs = slice(top - layer.box[1], bottom - layer.box[1]), slice(left - layer.box[0], right - layer.box[0])
    return _Layer.make(layer.rgb[:, ys, xs], layer.alpha[ys, xs], (left, top, right, bottom))


def _area(box: tuple) -> int:
    return max(box[2] - box[0], 0) * max(box[3] - box[1], 0)


def _over(lower: _Layer, upper: _Layer) -> _Layer:
    """`upper` composited over `lower` (Porter-Duff over, premultiplied float), straight result.

    Outside `upper`'s box the result is `lower` as it is (colour is 0 wherever alpha is 0, on both), so
    only that box is computed.
    """
    if upper.box[2] <= upper.box[0]:
        return lower
    box = _union(lower.box, upper.box)
    rgb, alpha = _embed(lower, box)
    if rgb is lower.rgb:
        rgb, alpha = rgb.copy(), alpha.copy()
    left, top, right, bottom = upper.box
    region = np.s_[top - box[1] : bottom - box[1], left - box[0] : right - box[0]]
    a_u = upper.alpha
    below = 1.0 - a_u
    below *= alpha[region]
    total = a_u + below
    inverse = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    for c in range(3):
        channel = upper.rgb[c] * a_u
        channel += rgb[c][region] * below
        channel *= inverse
        rgb[c][region] = channel
    alpha[region] = total
    return _Layer.make(rgb, alpha, box)


def _as_layers(layers: LayerStack | Sequence, side: str) -> tuple[list[_Layer], tuple[int, int]]:
    """The visible layers of a stack (or full-canvas RGBA images, bottom-first) and the canvas size."""
    if isinstance(layers, LayerStack):
        visible = [layer for layer in layers.layers if layer.visible]
        _check_size(side, len(visible), sum(_on_canvas(layer, *layers.size) for layer in visible))
        if not visible:
            raise ValueError(f"{side}: no visible layers to score")
        return [_render(layer, *layers.size) for layer in visible], layers.size
    else:
        renders = [np.asarray(im.convert("RGBA")) if hasattr(im, "convert") else np.asarray(im) for im in layers]
        for im in renders:
            if im.ndim != 3 or im.shape[2] != 4:
                raise ValueError(f"{side}: layers must be H x W x 4 RGBA images, got shape {im.shape}")
        size = (renders[0].shape[1], renders[0].shape[0]) if renders else (0, 0)
        if any((im.shape[1], im.shape[0]) != size for im in renders):
            raise ValueError(f"{side}: layers of different sizes")
        _check_size(side, len(renders), len(renders) * size[0] * size[1])
    if not renders:
        raise ValueError(f"{side}: no visible layers to score")
    return [_from_canvas(r) for r in renders], size


def _on_canvas(layer: Layer, width: int, height: int) -> int:
    """How many canvas pixels the layer's rectangle covers."""
    w = min(layer.x + layer.width, width) - max(layer.x, 0)
    h = min(layer.y + layer.height, height) - max(layer.y, 0)
    return max(w, 0) * max(h, 0)


def _check_size(side: str, count: int, pixels: int) -> None:
    """The bounds that keep time and memory in check (see MAX_EVAL_LAYERS, MAX_EVAL_PIXELS)."""
    if count > MAX_EVAL_LAYERS:
        raise ValueError(f"{side}: {count} visible layers, more than the limit of {MAX_EVAL_LAYERS}")
    if pixels > MAX_EVAL_PIXELS:
        raise ValueError(f"{side}: {pixels} layer pixels in all, more than the limit of {MAX_EVAL_PIXELS}")


def _check(pred_size: tuple[int, int], gt_size: tuple[int, int]) -> None:
    if pred_size != gt_size:
        raise ValueError(
            f"canvas sizes differ: prediction {pred_size[0]}x{pred_size[1]}, ground truth {gt_size[0]}x{gt_size[1]}"
        )


def rgb_l1(pred: np.ndarray, gt: np.ndarray) -> float:
    """Alpha-weighted RGB L1 of two full-canvas RGBA images (uint8, or float in [0, 1]); see module doc."""
    return _pair(_from_canvas(pred), _from_canvas(gt))[0]


def soft_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Soft alpha IoU sum(min) / sum(max) of two full-canvas RGBA images (1 when both are empty)."""
    return _pair(_from_canvas(pred), _from_canvas(gt))[1]


def dtw(cost: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Least summed cost of a monotone path through `cost` (n x m) from (0, 0) to (n-1, m-1), and the path.

    Steps are (1, 0), (0, 1) and (1, 1); every row and every column is visited at least once.
    """
    cost = np.asarray(cost, np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError("dtw needs at least one layer on each side")
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        # the first of equal values (within _TIE, so rounding does not decide): diagonal, then back in the prediction
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        low = min(acc[step] for step in steps)
        i, j = next(step for step in steps if acc[step] <= low + _TIE)
        path.append((i - 1, j - 1))
    return float(acc[n, m]), path[::-1]


def dtw_cost(cost: np.ndarray) -> float:
    """`dtw(cost)[0]`, one row at a time in numpy: F_i = S + cummin(D - S + c), S the row's prefix sums.

    Row i of the table is F_i[j] = c[i, j] + min(D[j], F_i[j - 1]) with D[j] = min(F_{i-1}[j - 1], F_{i-1}[j]);
    unrolled, F_i[j] = min over k <= j of D[k] + c[i, k] + ... + c[i, j], which the prefix sums give at once.
    """
    cost = np.asarray(cost, np.float64)
    if cost.size == 0:
        raise ValueError("dtw needs at least one layer on each side")
    row = np.cumsum(cost[0])
    for c in cost[1:]:
        reach = np.minimum(row, np.concatenate(([np.inf], row[:-1])))
        prefix = np.cumsum(c)
        row = prefix + np.minimum.accumulate(reach - prefix + c)
    return float(row[-1])


def _align(l1: np.ndarray, iou: np.ndarray) -> tuple[float, float, float]:
    """(summed DTW cost, mean rgb_l1, mean soft_iou) of the best alignment for the pair matrices."""
    total, path = dtw(l1 + (1.0 - iou))
    rows, cols = zip(*path, strict=True)
    return total, float(l1[rows, cols].mean()), float(iou[rows, cols].mean())


def evaluate(pred: LayerStack | Sequence, gt: LayerStack | Sequence, max_merge: int = 5) -> Scores:
    """Score `pred` against `gt` (stacks, or bottom-first full-canvas RGBA images) at k = 0..max_merge merges.

    Returns `[{"merge": k, "rgb_l1": x, "soft_iou": y}, ...]`; see the module docstring for the exact
    definition. Different canvas sizes, or a side without visible layers, raise ValueError.
    """
    if max_merge < 0:
        raise ValueError(f"max_merge must be >= 0, got {max_merge}")
    p, pred_size = _as_layers(pred, "prediction")
    g, gt_size = _as_layers(gt, "ground truth")
    _check(pred_size, gt_size)
    sums = {(a, b): _sums(a, b) for a in p for b in g}  # keyed by identity: nothing is computed twice
    l1 = np.array([[_scores(a, b, sums[a, b])[0] for b in g] for a in p], np.float64)
    iou = np.array([[_scores(a, b, sums[a, b])[1] for b in g] for a in p], np.float64)
    total, mean_l1, mean_iou = _align(l1, iou)
    rows = [{"merge": 0, "rgb_l1": mean_l1, "soft_iou": mean_iou}]
    candidates: dict[tuple[_Layer, _Layer], _Candidate] = {}
    for k in range(1, max_merge + 1):
        best = None
        for side, seq, other in (("pred", p, g), ("gt", g, p)):
            for i in range(len(seq) - 1):
                key = (seq[i], seq[i + 1])
                if key not in candidates:
                    candidates[key] = _Candidate.make(*key)
                candidate = candidates[key]
                scores = []
                for o in other:
                    pair_sums = candidate.sums_against(o, sums, side == "pred")
                    pair = (candidate.merged, o) if side == "pred" else (o, candidate.merged)
                    scores.append(_scores(*pair, pair_sums))
                new_l1, new_iou = _merged_matrices(l1, iou, side, i, scores)
                cost = dtw_cost(new_l1 + (1.0 - new_iou))
                if best is None or cost < best[0] - _TIE:
                    best = (cost, side, i, candidate, new_l1, new_iou)
        if best is None or best[0] >= total - _TIE:
            rows.extend({**rows[-1], "merge": j} for j in range(k, max_merge + 1))
            break
        _, side, i, candidate, l1, iou = best
        total, mean_l1, mean_iou = _align(l1, iou)
        merged = _over(candidate.lower, candidate.upper)  # the one merge made: now in full
        seq, other = (p, g) if side == "pred" else (g, p)
        for o in other:
            sums[(merged, o) if side == "pred" else (o, merged)] = candidate.sums[o]
        seq[i : i + 2] = [merged]
        live = {(s[j], s[j + 1]) for s in (p, g) for j in range(len(s) - 1)}
        candidates = {key: c for key, c in candidates.items() if key in live}  # the others can no longer happen
        rows.append({"merge": k, "rgb_l1": mean_l1, "soft_iou": mean_iou})
    return rows


def _merged_matrices(l1: np.ndarray, iou: np.ndarray, side: str, i: int, scores: list) -> tuple:
    """The pair matrices after replacing layers i and i+1 of `side` by their merge with pair `scores`."""
    axis = 0 if side == "pred" else 1
    out = []
    for matrix, column in ((l1, [s[0] for s in scores]), (iou, [s[1] for s in scores])):
        matrix = np.delete(matrix, i + 1, axis=axis)
        if axis == 0:
            matrix[i, :] = column
        else:
            matrix[:, i] = column
        out.append(matrix)
    return tuple(out)


def mean_scores(samples: Sequence[Scores]) -> Scores:
    """Per-k mean of several samples' `evaluate` rows (all computed with the same max_merge)."""
    if not samples:
        raise ValueError("no samples to average")
    if len({len(s) for s in samples}) != 1:
        raise ValueError("samples were scored with different max_merge")
    return [
        {
            "merge": rows[0]["merge"],
            "rgb_l1": float(np.mean([r["rgb_l1"] for r in rows])),
            "soft_iou": float(np.mean([r["soft_iou"] for r in rows])),
        }
        for rows in zip(*samples, strict=True)
    ]
