"""Peel training pairs (training.peel_data): the rounds inference makes, with the targets the network learns."""

from __future__ import annotations

import numpy as np

from training.peel_data import KIND_CLASS, peel_rounds, top_set


def _layer(shape, box, colour, alpha=1.0):
    layer = np.zeros((*shape, 4), np.float32)
    y0, y1, x0, x1 = box
    layer[y0:y1, x0:x1, :3] = colour
    layer[y0:y1, x0:x1, 3] = alpha
    return layer


def _design():
    shape = (40, 40)
    background = np.ones((*shape, 4), np.float32) * (0.2, 0.4, 0.6, 1.0)
    panel = _layer(shape, (5, 30, 5, 30), (0.9, 0.9, 0.9))
    text = _layer(shape, (10, 14, 8, 26), (0.0, 0.0, 0.0))  # on the panel
    icon = _layer(shape, (32, 38, 32, 38), (1.0, 0.0, 0.0))  # apart from everything
    return [background, panel, text, icon], ["background", "panel", "text", "shape"]


def test_the_top_set_is_what_nothing_above_overlaps():
    layers, _ = _design()
    alphas = [layer[..., 3] for layer in layers]
    assert top_set(alphas, [1, 2, 3]) == [2, 3]
    assert top_set(alphas, [1]) == [1]
    assert top_set(alphas, []) == []


def test_rounds_peel_top_first_and_end_on_an_empty_top():
    layers, kinds = _design()
    rounds = peel_rounds(layers, kinds, np.random.default_rng(0), exact_next=1.0)
    assert len(rounds) == 3  # {text, icon}, {panel}, nothing
    first, second, last = rounds
    expected = np.maximum(layers[2][..., 3], layers[3][..., 3])
    assert np.allclose(first["alpha"], expected)
    assert np.allclose(second["alpha"], layers[1][..., 3])
    assert last["alpha"].max() == 0 and last["kind"].max() == 0
    assert first["kind"][12, 10] == KIND_CLASS["text"] and first["kind"][35, 35] == KIND_CLASS["shape"]
    assert first["text_box"][11, 20] == 1 and first["text_box"][35, 35] == 0
    # what earlier rounds removed is an input; exact_next=1: the next image is the true composite of what is left
    assert np.allclose(second["removed"], expected) and first["removed"].max() == 0
    background_rgb = np.round(layers[0][0, 0, :3] * 255)
    assert np.abs(last["image"].astype(float) - background_rgb).max() <= 1


def test_touching_elements_are_marked_where_they_meet():
    shape = (20, 40)
    background = np.ones((*shape, 4), np.float32)
    left = _layer(shape, (5, 15, 5, 20), (1.0, 0.0, 0.0))
    right = _layer(shape, (5, 15, 20, 35), (0.0, 0.0, 1.0))
    (first, _) = peel_rounds([background, left, right], ["background", "shape", "shape"], np.random.default_rng(0), 1.0)
    touch = first["touch"] > 0
    assert touch[5:15, 19:21].all() and touch.sum() == 2 * 10


def test_imperfect_rounds_leave_leftovers_but_keep_the_true_targets():
    layers, kinds = _design()
    perfect = peel_rounds(layers, kinds, np.random.default_rng(0), exact_next=0.0)
    rounds = peel_rounds(layers, kinds, np.random.default_rng(0), exact_next=0.0, imperfect_next=1.0)
    assert np.array_equal(rounds[0]["image"], perfect[0]["image"])
    # every target is a true layer's alpha (a missed one comes again), never what was left behind
    truths = [layers[j][..., 3] for j in (1, 2, 3)]
    unions = [np.maximum.reduce([truths[j] for j in subset] + [0 * truths[0]]) for subset in _subsets(3)]
    for r in rounds:
        assert any(np.array_equal(r["alpha"], union) for union in unions)
    assert rounds[-1]["alpha"].max() == 0 and len(rounds) >= len(perfect)
    assert any(not np.array_equal(a["image"], b["image"]) for a, b in zip(rounds[1:], perfect[1:], strict=False))


def test_imperfect_removal_fades_erodes_grows_or_misses():
    from training.peel_data import imperfect

    alpha = np.zeros((12, 12), np.float32)
    alpha[3:9, 3:9] = 1.0
    seen = set()
    for seed in range(40):
        out, missed = imperfect([alpha, alpha], np.random.default_rng(seed))
        assert not all(missed)
        for a, miss in zip(out, missed, strict=True):
            if miss:
                seen.add("missed")
            elif np.array_equal(a, alpha):
                seen.add("kept")  # the one left when all would be missed is removed as it is
            elif a.sum() < alpha.sum() and a.max() < 1:
                seen.add("faded")
            elif a.sum() < alpha.sum():
                seen.add("eroded")
                assert (a[4:8, 4:8] == 1).all() and a[3, 3:9].max() == 0
            else:
                seen.add("grown")
                assert a[2:10, 2:10].min() == 1
    assert seen == {"missed", "faded", "eroded", "grown", "kept"}


def _subsets(n):
    from itertools import combinations

    return [subset for k in range(n + 1) for subset in combinations(range(n), k)]
