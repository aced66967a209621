"""QML rows of `qkdctl bench tune`: the QML tuners' options and the quantum-kernel decoy predictor.

The quantum-kernel predictor (qkdctl.qml.regressors) is scored exactly like the MLP
row of bench_tune.decoy_rows: the same held-out links (sample_figures seed 99;
its hyperparameters were chosen on seed 2024), the direct optimizer timed as the
baseline, prediction time per link (training excluded, reported separately).
"""

from __future__ import annotations

import time

from benchmarks.decoy_scoring import score_predictor
from qkdctl.qml.regressors import QuantumKernelDecoyPredictor
from qkdctl.tune.decoy_predictor import DEFAULT_TRAINING_SET, load_training_set

# (row label, tuner name, options): the QML polarization tuners on the noiseless Aer simulator
# and on a fake IBM device (local testing mode, its noise model; small shot counts)
QML_TUNERS = (
    ("qml-compile@aer", "qml-compile", {"seed": 5, "backend": "aer", "shots": 1024, "max_iter": 20}),
    ("qml-compile-pshift@aer", "qml-compile-pshift", {"seed": 5, "backend": "aer", "shots": 1024, "max_iter": 10}),
    ("qml-compile@fake:manila", "qml-compile", {"seed": 5, "backend": "fake:manila", "shots": 256, "max_iter": 10}),
    ("qml-compile-pshift@fake:manila", "qml-compile-pshift",
     {"seed": 5, "backend": "fake:manila", "shots": 256, "max_iter": 4}),
)


def qml_decoy_rows(quick: bool) -> list[dict]:
    """Quantum-kernel ridge predictor vs the direct optimizer; quick: 6 links, else 30."""
    features, targets, _ = load_training_set(DEFAULT_TRAINING_SET)
    t0 = time.perf_counter()
    pred = QuantumKernelDecoyPredictor().fit(features, targets)
    fit_s = time.perf_counter() - t0
    return [score_predictor(pred, "tune/decoy/qkernel", len(features), quick, fit_seconds=fit_s)]
