"""The LayerD protocol: pair scores and DTW worked out by hand on tiny canvases, and its behaviour on real images."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_stack
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from layered import edits
from layered.metrics import dtw, evaluate, mean_scores, rgb_l1, soft_iou
from layered.stack import Layer, LayerStack

RED, BLUE, WHITE, BLACK = (255, 0, 0, 255), (0, 0, 255, 255), (255, 255, 255, 255), (0, 0, 0, 255)


def _canvas(**pixels) -> np.ndarray:
    """A 2 x 2 RGBA canvas; keyword tl/tr/bl/br sets a pixel, the rest is transparent."""
    out = np.zeros((2, 2, 4), np.uint8)
    where = {"tl": (0, 0), "tr": (0, 1), "bl": (1, 0), "br": (1, 1)}
    for key, value in pixels.items():
        out[where[key]] = value
    return out


def _rows(scores):
    return [(r["merge"], r["rgb_l1"], r["soft_iou"]) for r in scores]


# ---- pair scores by hand -------------------------------------------------------------------------


def test_pair_scores_by_hand():
    gt = _canvas(tl=WHITE, tr=WHITE)  # top row white
    pred = _canvas(tl=WHITE, tr=BLACK, bl=WHITE)
    # alphas gt (1, 1, 0, 0), pred (1, 1, 1, 0): sum(min) = 2, sum(max) = 3
    assert soft_iou(pred, gt) == pytest.approx(2 / 3)
    # weights = gt alpha on tl, tr: |white - white| = 0 and |black - white| = 1 per channel -> (0 + 1) / 2
    assert rgb_l1(pred, gt) == pytest.approx(0.5)
    # the other way round the weights move to tl, tr, bl: errors 0 (tl), 1 (tr: white against black) and
    # 1 (bl: the transparent pixel counts as black, against white) -> 2 / 3; IoU is symmetric
    assert rgb_l1(gt, pred) == pytest.approx(2 / 3)
    assert soft_iou(gt, pred) == pytest.approx(2 / 3)


def test_pair_scores_with_partial_alpha_by_hand():
    gt = _canvas(tl=(200, 100, 0, 255), br=(0, 0, 0, 51))  # alphas 1 and 0.2
    pred = _canvas(tl=(200, 100, 0, 102), tr=(9, 9, 9, 255))  # alphas 0.4 and 1
    # sum(min) = min(.4, 1) = .4; sum(max) = 1 + 1 + .2 = 2.2
    assert soft_iou(pred, gt) == pytest.approx(0.4 / 2.2)
    # weights 1 (tl: colours equal -> 0) and .2 (br: pred is transparent, counts as black, gt black -> 0)
    assert rgb_l1(pred, gt) == pytest.approx(0.0)
    grey = _canvas(tl=(100, 100, 100, 255), br=(255, 255, 255, 51))
    # tl: |200-100|, |100-100|, |0-100| -> mean 200/3/255; br: 255/255 = 1, weight .2 -> (200/765 + .2) / 1.2
    assert rgb_l1(pred, grey) == pytest.approx((200 / 765 + 0.2) / 1.2, abs=1e-6)


def test_empty_layers():
    empty = _canvas()
    assert soft_iou(empty, empty) == 1.0 and rgb_l1(empty, empty) == 0.0
    assert soft_iou(_canvas(tl=RED), empty) == 0.0 and rgb_l1(_canvas(tl=RED), empty) == 0.0
    # nothing predicted where the gt has red: error |0 - 1| / 3 per channel, all of it weighted
    assert rgb_l1(empty, _canvas(tl=RED)) == pytest.approx(1 / 3)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_pair_scores_are_bounded_and_iou_symmetric(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, (2, 5, 6, 4), dtype=np.uint8)
    assert 0.0 <= soft_iou(a, b) <= 1.0 and 0.0 <= rgb_l1(a, b) <= 1.0
    assert soft_iou(a, b) == pytest.approx(soft_iou(b, a))
    assert soft_iou(a, a) == 1.0 and rgb_l1(a, a) == 0.0


# ---- DTW by hand ---------------------------------------------------------------------------------


def test_dtw_by_hand():
    cost = np.array([[1, 3], [2, 1], [5, 1]], float)
    # accumulated: row 0: 1, 4; row 1: 2+1 = 3, 1+min(1, 4, 3) = 2; row 2: 5+3 = 8, 1+min(3, 2, 8) = 3
    total, path = dtw(cost)
    assert total == 3.0 and path == [(0, 0), (1, 1), (2, 1)]
    assert dtw(np.array([[2.5]])) == (2.5, [(0, 0)])
    # one layer against three: the only path matches it to all three (one-to-many)
    assert dtw(np.array([[1.0, 2.0, 3.0]])) == (6.0, [(0, 0), (0, 1), (0, 2)])
    with pytest.raises(ValueError):
        dtw(np.zeros((0, 2)))


# ---- the protocol by hand ------------------------------------------------------------------------


def test_one_to_many_then_a_merge_by_hand():
    a = _canvas(tl=RED, bl=RED)  # left column red
    b = _canvas(tr=BLUE)  # top-right blue
    scores = _rows(evaluate([a, b], [a], max_merge=3))
    # k = 0: both predicted layers match the one gt layer. (a, a): L1 0, IoU 1. (b, a): IoU 0 / 3 = 0;
    # L1 over a's pixels tl, bl where b is transparent (black) against red: 1/3 each -> 1/3. Mean over
    # the two pairs: L1 1/6, IoU 1/2.
    # k = 1: the only merge, b over a, has alpha (1, 1, 1, 0) and red where a is: L1 0, IoU
    # sum(min) = 2 / sum(max) = 3 = 2/3. It lowers the summed cost (0 + 4/3 -> 1/3), so it is taken.
    # k = 2, 3: one layer on each side, nothing left to merge: carried over.
    expected = [(0, 1 / 6, 1 / 2), (1, 0, 2 / 3), (2, 0, 2 / 3), (3, 0, 2 / 3)]
    for got, want in zip(scores, expected, strict=True):
        assert got == pytest.approx(want)


def test_merge_on_the_ground_truth_side_by_hand():
    full = np.zeros((2, 2, 4), np.uint8)
    full[...] = RED
    left, right = _canvas(tl=RED, bl=RED), _canvas(tr=RED, br=RED)
    # k = 0: the one predicted layer matches both gt halves: each IoU 2/4, L1 0 (red on red under gt alpha)
    # k = 1: merging the gt halves gives the full red square: perfect
    assert _rows(evaluate([full], [left, right], max_merge=2)) == [(0, 0.0, 0.5), (1, 0.0, 1.0), (2, 0.0, 1.0)]


def test_opacity_counts_in_the_render():
    square = np.zeros((2, 2, 4), np.uint8)
    square[...] = WHITE
    pred = LayerStack(2, 2, (Layer(square, opacity=0.5),))
    gt = LayerStack(2, 2, (Layer(square),))
    # rendered alpha round(255 * .5) = 128 on all four pixels: IoU = 4 * 128/255 / 4; colours equal
    assert _rows(evaluate(pred, gt, max_merge=0)) == [(0, 0.0, pytest.approx(128 / 255))]


def test_mean_scores_by_hand():
    one = [{"merge": 0, "rgb_l1": 0.1, "soft_iou": 0.9}, {"merge": 1, "rgb_l1": 0.0, "soft_iou": 1.0}]
    two = [{"merge": 0, "rgb_l1": 0.3, "soft_iou": 0.5}, {"merge": 1, "rgb_l1": 0.2, "soft_iou": 0.6}]
    assert _rows(mean_scores([one, two])) == [(0, pytest.approx(0.2), pytest.approx(0.7)), (1, 0.1, 0.8)]
    with pytest.raises(ValueError):
        mean_scores([one, one[:1]])


# ---- behaviour on real images --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(shared_dir) -> LayerStack:
    """A real two-layer scene: one illustration as the opaque background, a soft disc cut from another on top."""
    size = (64, 48)
    with Image.open(shared_dir / "images" / "qwen-test-3.png") as im:
        background = np.array(im.convert("RGBA").resize(size, Image.Resampling.LANCZOS))
    with Image.open(shared_dir / "images" / "qwen-test-7.png") as im:
        disc = np.array(im.convert("RGBA").resize(size, Image.Resampling.LANCZOS))
    ys, xs = np.mgrid[:48, :64]
    radius = np.hypot(xs - 30, ys - 22)
    disc[..., 3] = (np.clip(18 - radius, 0, 4) / 4 * 255).astype(np.uint8)  # soft edge 4 px wide
    return LayerStack.from_images([background, disc], names=["background", "disc"])


def test_identical_stacks_are_perfect_at_every_merge(scene, rng):
    for stack in (scene, random_stack(rng, canvas=(30, 20), count=5)):
        scores = evaluate(stack, stack, max_merge=5)
        assert [r["merge"] for r in scores] == list(range(6))
        assert all(r["rgb_l1"] == 0.0 and r["soft_iou"] == 1.0 for r in scores)


def test_a_layer_split_in_two_is_perfect_after_one_merge(scene):
    disc = scene.render_layer(1)
    left, right = disc.copy(), disc.copy()
    left[:, 30:] = 0
    right[:, :30] = 0
    pred = LayerStack.from_images([scene.render_layer(0), left, right])
    scores = evaluate(pred, scene, max_merge=3)
    assert scores[0]["soft_iou"] < 0.9 and scores[0]["rgb_l1"] > 0.01
    for row in scores[1:]:
        assert row["rgb_l1"] == pytest.approx(0.0, abs=1e-6) and row["soft_iou"] == pytest.approx(1.0, abs=1e-6)


def test_swapping_two_overlapping_layers_changes_the_score(scene):
    swapped = edits.reorder(scene, 1, 0)
    scores = evaluate(swapped, scene, max_merge=3)
    assert scores[0]["soft_iou"] < 0.9
    # even with everything merged on both sides the colours differ where the two overlap
    assert all(r["rgb_l1"] > 0.01 for r in scores)


def test_hidden_layers_are_left_out(scene):
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 4), dtype=np.uint8)
    pred = scene.replace(layers=scene.layers + (Layer(noise, name="hidden", visible=False),))
    assert evaluate(pred, scene) == evaluate(scene, scene)
    only_hidden = edits.hide(edits.hide(scene, 0), 1)
    with pytest.raises(ValueError, match="no visible layers"):
        evaluate(only_hidden, scene)


def test_different_canvases_are_an_error(scene):
    other = LayerStack(65, 48, scene.layers)
    with pytest.raises(ValueError, match="canvas sizes differ: prediction 65x48, ground truth 64x48"):
        evaluate(other, scene)
    with pytest.raises(ValueError, match="max_merge"):
        evaluate(scene, scene, max_merge=-1)


def _ref_pair(p: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """The module docstring's formulas, written out on full float64 canvases."""
    a_p, a_g = p[..., 3], g[..., 3]
    high = np.maximum(a_p, a_g).sum()
    iou = np.minimum(a_p, a_g).sum() / high if high > 0 else 1.0
    l1 = (np.abs(p[..., :3] - g[..., :3]).mean(-1) * a_g).sum() / a_g.sum() if a_g.sum() > 0 else 0.0
    return l1, iou


def _ref_over(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    a = upper[..., 3:] + lower[..., 3:] * (1 - upper[..., 3:])
    premul = upper[..., :3] * upper[..., 3:] + lower[..., :3] * lower[..., 3:] * (1 - upper[..., 3:])
    return np.concatenate([np.divide(premul, a, out=np.zeros_like(premul), where=a > 0), a], -1)


def _paths(i: int, j: int):
    """Every monotone path from (0, 0) to (i, j), by brute force."""
    if (i, j) == (0, 0):
        yield [(0, 0)]
        return
    for a, b in ((i - 1, j), (i, j - 1), (i - 1, j - 1)):
        if a >= 0 and b >= 0:
            for path in _paths(a, b):
                yield path + [(i, j)]


def _ref_best(pred: list, gt: list) -> tuple[float, float, float]:
    pairs = {(i, j): _ref_pair(p, g) for i, p in enumerate(pred) for j, g in enumerate(gt)}
    best = min(_paths(len(pred) - 1, len(gt) - 1), key=lambda path: sum(1 + pairs[q][0] - pairs[q][1] for q in path))
    total = sum(pairs[q][0] + 1 - pairs[q][1] for q in best)
    return total, np.mean([pairs[q][0] for q in best]), np.mean([pairs[q][1] for q in best])


def _merges(layers: list) -> list[list]:
    return [layers[:i] + [_ref_over(layers[i], layers[i + 1])] + layers[i + 2 :] for i in range(len(layers) - 1)]


@pytest.mark.parametrize("seed", range(6))
def test_first_merge_matches_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    pred = random_stack(rng, canvas=(20, 14), count=int(rng.integers(1, 5)))
    gt = random_stack(rng, canvas=(20, 14), count=int(rng.integers(1, 5)))
    p = [pred.render_layer(i) / 255.0 for i in range(len(pred))]
    g = [gt.render_layer(i) / 255.0 for i in range(len(gt))]
    scores = evaluate(pred, gt, max_merge=1)
    total, l1, iou = _ref_best(p, g)
    assert scores[0]["rgb_l1"] == pytest.approx(l1, abs=1e-5) and scores[0]["soft_iou"] == pytest.approx(iou, abs=1e-5)
    options = [_ref_best(q, g) for q in _merges(p)] + [_ref_best(p, q) for q in _merges(g)]
    merged = min(options, default=None, key=lambda o: o[0])
    if merged is None or merged[0] >= total:
        merged = (total, l1, iou)  # nothing lowers the cost: carried over
    assert scores[1]["rgb_l1"] == pytest.approx(merged[1], abs=1e-5)
    assert scores[1]["soft_iou"] == pytest.approx(merged[2], abs=1e-5)


def _ref_dtw(cost: np.ndarray) -> tuple[float, list]:
    """Textbook DTW on the full table, traced back (on ties diagonal first, then a step back in the prediction)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path, i, j = [], n, m
    while (i, j) != (0, 0):
        path.append((i - 1, j - 1))
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        low = min(acc[s] for s in steps)  # equal within 1e-6 (as the module says): rounding must not decide
        i, j = next(s for s in steps if acc[s] <= low + 1e-6) if (i, j) != (1, 1) else (0, 0)
    return float(acc[n, m]), path


def _ref_score(pred: list, gt: list) -> tuple[float, float, float]:
    pairs = np.array([[_ref_pair(p, g) for g in gt] for p in pred])
    total, path = _ref_dtw(pairs[..., 0] + 1 - pairs[..., 1])
    return total, float(np.mean([pairs[q][0] for q in path])), float(np.mean([pairs[q][1] for q in path]))


def _ref_evaluate(pred: list, gt: list, max_merge: int) -> list[tuple]:
    """The greedy merges of the module docstring on full float64 canvases, every candidate scored afresh."""
    total, l1, iou = _ref_score(pred, gt)
    rows = [(0, l1, iou)]
    for k in range(1, max_merge + 1):
        options = [(_ref_score(q, gt), q, gt) for q in _merges(pred)] + [
            (_ref_score(pred, q), pred, q) for q in _merges(gt)
        ]
        low = min((o[0][0] for o in options), default=None)
        best = next(o for o in options if o[0][0] <= low + 1e-6) if options else None  # the first of equal costs
        if best is None or best[0][0] >= total - 1e-6:
            rows += [(j, l1, iou) for j in range(k, max_merge + 1)]
            break
        (total, l1, iou), pred, gt = best
        rows.append((k, l1, iou))
    return rows


@pytest.mark.parametrize("seed", range(8))
def test_five_merges_match_a_dense_reference(seed):
    """The cropped, cached, incremental computation against the definition on whole canvases."""
    rng = np.random.default_rng(100 + seed)
    pred = random_stack(rng, canvas=(40, 30), count=int(rng.integers(2, 7)))
    gt = random_stack(rng, canvas=(40, 30), count=int(rng.integers(2, 7)))
    p = [pred.render_layer(i) / 255.0 for i in range(len(pred))]
    g = [gt.render_layer(i) / 255.0 for i in range(len(gt))]
    ours = _rows(evaluate(pred, gt, max_merge=5))
    for (k, l1, iou), (ref_k, ref_l1, ref_iou) in zip(ours, _ref_evaluate(p, g, 5), strict=True):
        assert k == ref_k
        assert l1 == pytest.approx(ref_l1, abs=1e-5) and iou == pytest.approx(ref_iou, abs=1e-5), (k, ours)


def test_dtw_cost_equals_the_table():
    from layered.metrics import dtw_cost

    rng = np.random.default_rng(3)
    for n, m in [(1, 1), (1, 7), (7, 1), (5, 9), (12, 4)]:
        cost = rng.random((n, m))
        assert dtw_cost(cost) == pytest.approx(_ref_dtw(cost)[0], rel=1e-12)
