"""Labeled detection data from the simulated bench (seeded, cached on disk).

Feature rows of independent scenario blocks (qkdctl.detect.scenarios) grouped
as: normal_train, normal_test (held out, sets the false-alarm figures), and one
group per benign fault and per attack.  The cache (a .npz per size and seed in
the system temp directory) only saves time: deleting it regenerates the same rows.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from qkdctl.detect.features import extract_many
from qkdctl.detect.scenarios import SCENARIOS, generate

CACHE_DIR = Path(tempfile.gettempdir()) / "qkdctl-detect-cache"
SIZES = {  # blocks per group: quick, full
    True: {"normal_train": 200, "normal_test": 300, "other": 25},
    False: {"normal_train": 400, "normal_test": 1000, "other": 60},
}


def make_bench(config: dict, seed: int) -> SimBench:
    """The bench factory scenarios.generate needs."""
    return SimBench(SimConfig.build(**config), seed)


def dataset(quick: bool, seed: int = 2026) -> tuple[dict[str, np.ndarray], float]:
    """({group: features[n, N_FEATURES]}, seconds spent generating; 0 when cached)."""
    sizes = SIZES[quick]
    path = CACHE_DIR / f"detect_{'quick' if quick else 'full'}_{seed}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}, 0.0
    t0 = time.perf_counter()
    groups = {
        "normal_train": extract_many(generate("normal", sizes["normal_train"], make_bench, seed)),
        "normal_test": extract_many(generate("normal", sizes["normal_test"], make_bench, seed + 1)),
    }
    for k, sc in enumerate(SCENARIOS):
        if sc.label != "normal":
            groups[sc.name] = extract_many(generate(sc, sizes["other"], make_bench, seed + 10 + k))
    seconds = time.perf_counter() - t0
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **groups)
    return groups, seconds
