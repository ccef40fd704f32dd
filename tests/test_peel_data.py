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


def _remover(*takes):
    """A stand-in network whose removals, one per call, are the given alphas; then none (a filled round)."""
    calls = iter(takes)
    return lambda _rgb, _removed: next(calls, [])


def test_an_on_policy_round_that_takes_the_true_top_is_the_filled_round():
    layers, kinds = _design()
    perfect = peel_rounds(layers, kinds, np.random.default_rng(0), exact_next=0.0)
    alphas = [layer[..., 3] for layer in layers]
    remove = _remover([alphas[2], alphas[3]], [alphas[1]])
    rounds = peel_rounds(layers, kinds, np.random.default_rng(0), 0.0, remove=remove, on_policy_next=1.0)
    assert len(rounds) == len(perfect) == 3
    for ours, theirs in zip(rounds, perfect, strict=True):
        assert np.array_equal(ours["image"], theirs["image"]) and np.allclose(ours["alpha"], theirs["alpha"])


def test_a_network_that_merges_two_layers_takes_both_off_the_targets():
    layers, kinds = _design()
    alphas = [layer[..., 3] for layer in layers]
    merged = np.maximum(alphas[1], alphas[2])  # the panel taken with the text on it; the icon missed
    rounds = peel_rounds(layers, kinds, np.random.default_rng(0), 0.0, remove=_remover([merged]), on_policy_next=1.0)
    # what is left to find is the icon alone (the panel came off with the text), then nothing
    assert np.allclose(rounds[1]["alpha"], alphas[3])
    assert np.allclose(rounds[1]["removed"], merged)
    assert rounds[-1]["alpha"].max() == 0 and len(rounds) == 3
    assert np.abs(rounds[1]["image"][20, 20].astype(float) - np.round(layers[0][0, 0, :3] * 255)).max() <= 1


def test_a_layer_the_network_took_less_than_half_of_loses_that_part_only():
    layers, kinds = _design()
    alphas = [layer[..., 3] for layer in layers]
    corner = np.zeros_like(alphas[3])
    corner[32:38, 32:34] = 1.0  # a third of the icon, with the text
    take = np.maximum(alphas[2], corner)
    rounds = peel_rounds(layers, kinds, np.random.default_rng(0), 0.0, remove=_remover([take]), on_policy_next=1.0)
    second = rounds[1]["alpha"]
    rest_of_icon = alphas[3] * (1.0 - corner)
    # the text is gone; the panel, whole (the text hid it where the network took), and the rest of the icon
    assert np.allclose(second, np.maximum(alphas[1], rest_of_icon))
    assert second[35, 33] == 0 and second[35, 36] == 1 and second[12, 10] == 1
