"""QML rows of `qkdctl bench tune`: the QML tuners' options and the quantum-kernel decoy predictor.

The quantum-kernel predictor (qkdctl.qml.regressors) is scored exactly like the MLP
row of bench_tune.decoy_rows: the same held-out links (sample_figures seed 99;
its hyperparameters were chosen on seed 2024), the direct optimizer timed as the
baseline, prediction time per link (training excluded, reported separately).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import best_seconds, result
from benchmarks.make_decoy_data import sample_figures
from qkdctl.qml.regressors import QuantumKernelDecoyPredictor
from qkdctl.tune.decoy import finite_key_rate, optimize_decoy
from qkdctl.tune.decoy_predictor import DEFAULT_TRAINING_SET, load_training_set

# polarization tuners on the noiseless Aer simulator (fake-backend runs: tests/qml, docs/qml.md)
QML_TUNERS = (("qml-compile", {"seed": 5, "backend": "aer", "shots": 1024, "max_iter": 20}),
              ("qml-compile-pshift", {"seed": 5, "backend": "aer", "shots": 1024, "max_iter": 10}))


def qml_decoy_rows(quick: bool) -> list[dict]:
    """Quantum-kernel ridge predictor vs the direct optimizer; quick: 6 links, else 30."""
    features, targets, _ = load_training_set(DEFAULT_TRAINING_SET)
    t0 = time.perf_counter()
    pred = QuantumKernelDecoyPredictor().fit(features, targets)
    fit_s = time.perf_counter() - t0
    fracs, t_direct, t_pred = [], [], []
    for fig in sample_figures(np.random.default_rng(99), 6 if quick else 30):
        opt = optimize_decoy(fig)
        if opt.rate_per_pulse <= 0:
            continue
        t_direct.append(opt.seconds)
        t_pred.append(best_seconds(lambda: pred.predict(fig.features()), repeats=5))
        fracs.append(max(finite_key_rate(fig, pred.predict(fig.features())[0]), 0.0) / opt.rate_per_pulse)
    return [result("tune/decoy/qkernel", len(fracs), float(np.sum(t_pred)), "links/s", "decoy-direct",
                   float(np.sum(t_direct)), mean_fraction_of_optimal=float(np.mean(fracs)),
                   min_fraction_of_optimal=float(np.min(fracs)), speedup=float(np.sum(t_direct) / np.sum(t_pred)),
                   training_links=len(features), fit_seconds=fit_s)]
