"""Small seeded scenario sets shared by the detection tests (generated once per session)."""

import numpy as np
import pytest

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from qkdctl.detect.scenarios import SCENARIOS, generate

N_NORMAL = 30
N_OTHER = 3


def make_bench(config: dict, seed: int) -> SimBench:
    return SimBench(SimConfig.build(**config), seed)


@pytest.fixture(scope="session")
def reports() -> dict:
    """{scenario name: [BlockReport]}; 'normal' has N_NORMAL blocks, 'normal_test' 10, others N_OTHER."""
    out = {"normal": generate("normal", N_NORMAL, make_bench, seed=101),
           "normal_test": generate("normal", 10, make_bench, seed=102)}
    for k, sc in enumerate(SCENARIOS):
        if sc.label != "normal":
            out[sc.name] = generate(sc, N_OTHER, make_bench, seed=200 + k)
    return out


@pytest.fixture(scope="session")
def features(reports) -> dict:
    from qkdctl.detect.features import extract_many

    return {k: extract_many(v) for k, v in reports.items()}


@pytest.fixture(scope="session")
def labeled(features):
    """(x, y) training set: normal + benign (0) and attacks (1)."""
    from qkdctl.detect.scenarios import BY_NAME

    xs, ys = [], []
    for name, x in features.items():
        if name == "normal_test":
            continue
        label = BY_NAME[name].label if name in BY_NAME else "normal"
        xs.append(x)
        ys.append(np.full(len(x), int(label == "attack")))
    return np.vstack(xs), np.concatenate(ys)
