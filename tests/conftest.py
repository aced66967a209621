"""Shared pytest fixtures: seeded generators only."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator (tests never use unseeded randomness)."""
    return np.random.default_rng(20261126)


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--device-address KIND=RESOURCE` (repeatable) enables tests marked `device` for that instrument."""
    parser.addoption(
        "--device-address", action="append", default=[], metavar="KIND=RESOURCE",
        help="real instrument for device tests, e.g. n7764a=TCPIP0::10.0.0.5::5025::SOCKET",
    )
