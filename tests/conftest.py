"""Shared fixtures: paths to the shared corpus and small random stacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Property tests draw the same examples on every run: CI stays reproducible, and a failure found
# locally is found again. No example database is written into the checkout.
settings.register_profile("layered", derandomize=True, database=None, deadline=None)
settings.load_profile("layered")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
