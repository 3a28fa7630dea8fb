"""Shared fixtures: every backend, seeded generators."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from hypothesis import settings

matplotlib.use("Agg")

# The documented example models (examples/demo_models.py) are imported by the CLI tests.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

BACKENDS = ("native", "giotto", "gudhi", "torch")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each persistence backend in turn."""
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator (tests are never unseeded)."""
    return np.random.default_rng(20231215)
