"""Generate the decoy predictor's training set: direct finite-key optima on sampled links.

`python -m benchmarks.make_decoy_data [N] [SEED]` writes benchmarks/data/decoy_train.npz
(features (n, 5), targets (n, 5) encoded optima, rates (n,) bits/pulse) for links
drawn by `sample_figures`; links without key at the optimum are dropped.
"""

from __future__ import annotations

import sys

import numpy as np

from qkdctl.tune.decoy import LinkFigures, ProtocolConstants, optimize_decoy
from qkdctl.tune.decoy_predictor import DEFAULT_TRAINING_SET, encode_choices

RANGES = {"loss_db": (5.0, 30.0), "misalignment": (0.002, 0.03), "log10_dark": (-8.0, -5.5),
          "afterpulse_prob": (0.0, 0.03), "log10_block": (5.5, 8.0)}
"""Uniform sampling ranges of the link figures (dB, probability, log10 per slot, -, log10 detections)."""


def sample_figures(rng: np.random.Generator, n: int) -> list[LinkFigures]:
    """n links drawn uniformly from RANGES."""
    u = {k: rng.uniform(lo, hi, n) for k, (lo, hi) in RANGES.items()}
    return [LinkFigures(float(u["loss_db"][i]), float(u["misalignment"][i]), 10 ** float(u["log10_dark"][i]),
                        float(u["afterpulse_prob"][i]), 10 ** float(u["log10_block"][i])) for i in range(n)]


def build(n: int, seed: int, constants: ProtocolConstants = ProtocolConstants()):
    """(features, targets, rates) of the links with key among n sampled ones."""
    figs, choices, rates = [], [], []
    for fig in sample_figures(np.random.default_rng(seed), n):
        opt = optimize_decoy(fig, constants)
        if opt.rate_per_pulse > 0:
            figs.append(fig.features())
            choices.append(opt.choice)
            rates.append(opt.rate_per_pulse)
    return np.array(figs), encode_choices(choices, constants), np.array(rates)


if __name__ == "__main__":
    n_links = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    features, targets, rates = build(n_links, seed)
    DEFAULT_TRAINING_SET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DEFAULT_TRAINING_SET, features=features, targets=targets, rates=rates)
    print(f"{len(rates)} of {n_links} links with key -> {DEFAULT_TRAINING_SET}")
