"""Shared pytest fixtures: seeded generators only."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator (tests never use unseeded randomness)."""
    return np.random.default_rng(20261126)
