"""Score a learned decoy predictor against the direct finite-key optimizer, one way for all.

Held-out links from sample_figures(seed 99); per link the direct optimizer is timed (the
baseline) and the prediction is timed (training excluded); the figure of merit is the
finite-key rate at the predicted settings as a fraction of the optimal rate.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import best_seconds, result
from benchmarks.make_decoy_data import sample_figures
from qkdctl.tune.decoy import finite_key_rate, optimize_decoy


def score_predictor(pred, name: str, training_links: int, quick: bool, **extra: object) -> dict:
    """One bench result for a fitted predictor (fit/predict interface); quick: 6 links, else 30."""
    fracs, t_direct, t_pred = [], [], []
    for fig in sample_figures(np.random.default_rng(99), 6 if quick else 30):
        opt = optimize_decoy(fig)
        if opt.rate_per_pulse <= 0:
            continue
        t_direct.append(opt.seconds)
        t_pred.append(best_seconds(lambda: pred.predict(fig.features()), repeats=5))
        fracs.append(max(finite_key_rate(fig, pred.predict(fig.features())[0]), 0.0) / opt.rate_per_pulse)
    return result(name, len(fracs), float(np.sum(t_pred)), "links/s", "decoy-direct", float(np.sum(t_direct)),
                  mean_fraction_of_optimal=float(np.mean(fracs)), min_fraction_of_optimal=float(np.min(fracs)),
                  speedup=float(np.sum(t_direct) / np.sum(t_pred)), training_links=training_links, **extra)
