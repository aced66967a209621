"""Labeled detection data from the simulated bench (seeded, cached on disk).

Feature rows of independent scenario blocks (qkdctl.detect.scenarios) grouped
as: normal_train, normal_test (held out, sets the false-alarm figures), and one
group per benign fault and per attack.  The cache (a .npz per size and seed in
the system temp directory) only saves time: deleting it regenerates the same rows.
Long series are generated in chunks on worker processes (`rows`); block i of a
scenario depends only on (seed, i), so the rows do not depend on the chunking.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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
CHUNK_BLOCKS = 25  # blocks per worker task


def make_bench(config: dict, seed: int) -> SimBench:
    """The bench factory scenarios.generate needs."""
    return SimBench(SimConfig.build(**config), seed)


def _chunk(args: tuple[str, int, int, int]) -> tuple[int, np.ndarray, float]:
    name, seed, first, count = args
    t0 = time.process_time()
    x = extract_many(generate(name, count, make_bench, seed, first_block=first))
    return first, x, time.process_time() - t0


def rows(plan: dict[str, tuple[int, int]], workers: int = 0) -> tuple[dict[str, np.ndarray], float]:
    """({group: features[n, N_FEATURES]}, CPU seconds spent in generation) for plan {group: (n_blocks, seed)}.

    A group named after a scenario generates that scenario; "normal_*" groups generate "normal".
    workers: processes (0 = one per CPU, at most 2; 1 = in this process).
    """
    tasks = []
    for group, (n, seed) in plan.items():
        name = "normal" if group.startswith("normal") else group
        tasks += [(group, (name, seed, a, min(CHUNK_BLOCKS, n - a))) for a in range(0, n, CHUNK_BLOCKS)]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers == 1:
        done = [_chunk(t) for _, t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_chunk, [t for _, t in tasks]))
    parts: dict[str, list] = {g: [] for g in plan}
    for (group, _), (first, x, _s) in zip(tasks, done):
        parts[group].append((first, x))
    out = {g: np.vstack([x for _, x in sorted(p, key=lambda fx: fx[0])]) for g, p in parts.items()}
    return out, float(sum(s for _, _, s in done))


def dataset(quick: bool, seed: int = 2026) -> tuple[dict[str, np.ndarray], float]:
    """({group: features[n, N_FEATURES]}, seconds spent generating; 0 when cached)."""
    sizes = SIZES[quick]
    path = CACHE_DIR / f"detect_{'quick' if quick else 'full'}_{seed}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}, 0.0
    t0 = time.perf_counter()
    plan = {"normal_train": (sizes["normal_train"], seed), "normal_test": (sizes["normal_test"], seed + 1)}
    for k, sc in enumerate(SCENARIOS):
        if sc.label != "normal":
            plan[sc.name] = (sizes["other"], seed + 10 + k)
    groups, _ = rows(plan)
    seconds = time.perf_counter() - t0
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **groups)
    return groups, seconds
