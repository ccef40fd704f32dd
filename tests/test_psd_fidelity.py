"""PSNR of a recomposition against a reference, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layered.psd.fidelity import PERFECT_PSNR, psnr


def test_identical_is_perfect():
    image = np.random.default_rng(0).integers(0, 256, (8, 9, 4), dtype=np.uint8)
    assert psnr(image, image) == PERFECT_PSNR


def test_one_level_everywhere_on_opaque_rgba():
    ours = np.full((4, 4, 4), 100, np.uint8)
    ours[..., 3] = 255
    ref = ours.copy()
    ref[..., :3] = 101
    # three of four channels differ by 1/255: MSE = 0.75 / 255^2
    assert psnr(ours, ref) == pytest.approx(10 * math.log10(255**2 / 0.75), abs=1e-3)


def test_rgb_reference_means_over_white():
    ours = np.zeros((2, 2, 4), np.uint8)  # fully transparent: white once flattened
    white = np.full((2, 2, 3), 255, np.uint8)
    assert psnr(ours, white) == PERFECT_PSNR
    black = np.zeros((2, 2, 3), np.uint8)
    assert psnr(ours, black) == pytest.approx(0.0, abs=1e-6)


def test_rgba_reference_is_compared_premultiplied():
    # colour under alpha 0 does not count
    ours = np.array([[[255, 0, 0, 0]]], np.uint8)
    ref = np.array([[[0, 255, 0, 0]]], np.uint8)
    assert psnr(ours, ref) == PERFECT_PSNR


def test_size_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 2, 4), np.uint8), np.zeros((3, 2, 4), np.uint8))
