"""Timing helpers shared by the benchmarks: best-of-N wall time and the result record."""

from __future__ import annotations

import time
from typing import Callable


def best_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Best wall-clock time (s) of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def result(
    name: str,
    size: int,
    seconds: float,
    unit: str,
    baseline_name: str,
    baseline_seconds: float,
    **extra: object,
) -> dict:
    """One benchmark result: rate = size/seconds in `unit`, baseline timed in the same run."""
    rate = size / seconds
    baseline_rate = size / baseline_seconds
    return {
        "name": name,
        "size": size,
        "seconds": seconds,
        "rate": rate,
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline_rate": baseline_rate,
        "speedup": rate / baseline_rate,
        **extra,
    }
