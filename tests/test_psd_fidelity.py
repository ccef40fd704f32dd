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


@pytest.mark.parametrize("channels", [3, 4])
def test_worst_over_is_the_worse_of_over_black_and_over_white(channels):
    """The reader's check, against the formula: straight RGBA over an opaque colour, PSNR on [0, 1]."""
    from layered.psd.fidelity import worst_over_psnr

    rng = np.random.default_rng(channels)
    ours = rng.integers(0, 256, (30, 20, 4), dtype=np.uint8)
    reference = np.clip(ours[..., :channels].astype(int) + rng.integers(-6, 7, (30, 20, channels)), 0, 255)
    reference = reference.astype(np.uint8)

    def over(image, background):
        alpha = image[..., 3:] / 255.0 if image.shape[2] == 4 else 1.0
        return image[..., :3] / 255.0 * alpha + background * (1 - alpha)

    backgrounds = (1.0,) if channels == 3 else (0.0, 1.0)
    want = min(10 * np.log10(1 / np.mean((over(ours, bg) - over(reference, bg)) ** 2)) for bg in backgrounds)
    assert worst_over_psnr(ours, reference) == pytest.approx(want, abs=1e-6)
    assert worst_over_psnr(ours, ours) == PERFECT_PSNR
