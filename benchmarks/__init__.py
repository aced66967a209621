"""Benchmarks behind `qkdctl bench NAME`.

Each module `benchmarks/bench_<name>.py` defines `run(quick: bool) -> list[dict]`;
`qkdctl bench NAME` discovers it by name.  Every result dict is built with
`benchmarks.common.result` and carries the baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    """Names of the benchmarks found in this package (sorted)."""
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(__path__)
        if m.name.startswith("bench_")
    )


def run(name: str, quick: bool = False) -> list[dict]:
    """Run one benchmark by name and return its results."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    return module.run(quick=quick)
