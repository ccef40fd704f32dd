"""PSNR and SSIM: the one convention (values in [0, 1], PSNR inf when equal), checked against formulas and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layered.similarity import gaussian_blur, psnr, ssim


def test_psnr_and_ssim_against_formulas(rng):
    a = rng.random((16, 16, 3))
    b = np.clip(a + 0.1, 0, None)  # where not clipped, error 0.1
    expected = 10 * math.log10(1 / np.mean((a - b) ** 2))
    assert psnr(a, b) == pytest.approx(expected)
    assert psnr(a, a) == math.inf
    assert psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)) == pytest.approx(20.0)  # peak 1: mse 0.01 is 20 dB
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    assert ssim(a, noisy) < ssim(a, np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)) < 1.0


def test_gaussian_blur_matches_scipy(rng):
    ndimage = pytest.importorskip("scipy.ndimage")
    image = rng.random((13, 17))
    expected = ndimage.gaussian_filter(image, 1.5, truncate=3.5, mode="reflect")
    np.testing.assert_allclose(gaussian_blur(image), expected, atol=1e-12)
