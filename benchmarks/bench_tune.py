"""`qkdctl bench tune`: polarization tuners on the simulated bench, against an oracle.

For each drift of benchmarks.tune_sim.DRIFTS ("default": slow random walk; "hard":
fast walk plus sudden jumps), the bench starts aligned (identity fiber, controller
at identity) and every tuner tracks it for the same simulated time, with the
engine's one-block lag between a proposal and its effect (quick: 20 blocks of 5 ms;
full: 60 blocks of 10 ms).  Figures per tuner: mean measured QBER (max of e_Z, e_X per
block) and mean e_Z and e_X apart, fraction of blocks above the 0.11 threshold, secret key retained
relative to the oracle (controller set to the exact inverse of the true fiber
rotation before every block, same seed), probes, circuit shots, tuner wall time.
The baseline timed in the same run is "none" (no tuner).  The decoy rows compare
the learned predictor with the direct finite-key optimizer (fraction of the optimal
rate, speed-up).  Results: docs/qml.md.
"""

from __future__ import annotations

import time

from benchmarks.common import result
from benchmarks.decoy_scoring import score_predictor
from benchmarks.qml_rows import QML_TUNERS, qml_decoy_rows
from benchmarks.tune_sim import DRIFTS, KeyModel, SimBench, calibration_for, retained, run_loop, sim_config
from qkdctl.tune import make_tuner
from qkdctl.tune.decoy_predictor import DEFAULT_TRAINING_SET, DecoyPredictor, load_training_set

THRESHOLD = 0.11
# (row label, tuner name, options)
TUNERS = (("tomographic", "tomographic", {}), ("spsa", "spsa", {"seed": 5}),
          ("nelder-mead", "nelder-mead", {})) + QML_TUNERS


def decoy_rows(quick: bool) -> list[dict]:
    """Learned decoy predictor vs the direct optimizer on held-out links (seed 99).

    Per link: optimal finite-key rate (direct, timed: the baseline) and the rate at the
    MLP's prediction (timed per prediction, training excluded).  quick: 6 links, else 30.
    """
    features, targets, _ = load_training_set(DEFAULT_TRAINING_SET)
    pred = DecoyPredictor(seed=0).fit(features, targets)
    return [score_predictor(pred, "tune/decoy/mlp", len(features), quick)]


def polarization_rows(drift: str, quick: bool) -> list[dict]:
    """One result per tuner on one drift (oracle and none first); quick: 20 blocks of 5 ms, else 60 of 10 ms."""
    n_blocks, block_s = (20, 5e-3) if quick else (60, 1e-2)
    cfg = sim_config(drift, "mpc320", initial_rotation="identity")
    cal = calibration_for(cfg)
    km = KeyModel(cfg)
    t0 = time.perf_counter()
    oracle = run_loop(SimBench(cfg, 11), None, n_blocks, block_s, km, oracle=cal)
    t_oracle = time.perf_counter() - t0
    t0 = time.perf_counter()
    none = run_loop(SimBench(cfg, 11), None, n_blocks, block_s, km)
    t_none = time.perf_counter() - t0
    rows = [("oracle", oracle, t_oracle), ("none", none, t_none)]
    for label, name, opts in TUNERS:
        t0 = time.perf_counter()
        res = run_loop(SimBench(cfg, 11), make_tuner(name, cal, opts), n_blocks, block_s, km,
                       apply_lag_blocks=1)
        rows.append((label, res, time.perf_counter() - t0))
    return [result(f"tune/{drift}/{label}", n_blocks, secs, "blocks/s", "none", t_none,
                   drift=drift, tuner=label, block_s=block_s,
                   retained_vs_oracle=retained(res, oracle), **res.summary(THRESHOLD))
            for label, res, secs in rows]


def run(quick: bool) -> list[dict]:
    """The polarization rows of every drift, then the decoy rows."""
    out = [row for drift in DRIFTS for row in polarization_rows(drift, quick)]
    return out + decoy_rows(quick) + qml_decoy_rows(quick)
