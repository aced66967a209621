"""Train the adaptive-control policies on the surrogate bench and save them.

`python -m benchmarks.train_control [OUT_DIR]` writes softmax_policy.json and
vqc_policy.json (default lab_configs/control/), each with its training record:
seeds, iterations, batch, blocks per episode, wall seconds, shots (VQC).
The `train_*` functions are what `qkdctl bench control` times.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from qkdctl.control.actions import ActionSpace
from qkdctl.control.policy import SoftmaxPolicy
from qkdctl.control.rollout import train_reinforce, train_spsa
from qkdctl.control.surrogate import training_envs
from qkdctl.control.vqc import VqcPolicy
from qkdctl.qml.backends import open_backend

BLOCKS_PER_EPISODE = 24
SOFTMAX = {"seed": 1, "iterations": 200, "batch": 32, "lr": 1.5, "gamma": 0.0}
VQC = {"seed": 2, "iterations": 48, "batch": 6, "shots": 64, "layers": 1, "backend": "aer", "init_sigma": 0.3,
       "spsa_a": 3.0, "spsa_c": 0.5}
"""Training settings (quick runs scale iterations down, see `scaled`)."""


def scaled(settings: dict, quick: bool, factor: int = 10) -> dict:
    """Quick runs: iterations // factor (at least 3)."""
    return {**settings, "iterations": max(3, settings["iterations"] // factor)} if quick else dict(settings)


def train_softmax(settings: dict = SOFTMAX, space: ActionSpace = ActionSpace()) -> SoftmaxPolicy:
    """A softmax policy trained by REINFORCE on the surrogate; training record in .training."""
    pol = SoftmaxPolicy(space)
    rng = np.random.default_rng(settings["seed"])
    t0 = time.perf_counter()
    trace = train_reinforce(pol, training_envs(settings["batch"], BLOCKS_PER_EPISODE), settings["iterations"], rng,
                            lr=settings["lr"], gamma=settings["gamma"])
    pol.training.update({**settings, "blocks_per_episode": BLOCKS_PER_EPISODE, "env": "surrogate",
                         "train_seconds": time.perf_counter() - t0, "reward_trace": trace})
    return pol


def train_vqc(settings: dict = VQC, space: ActionSpace = ActionSpace(), backend=None) -> VqcPolicy:
    """A VQC policy trained by SPSA on the surrogate, run on settings['backend'] (or `backend`)."""
    backend = backend or open_backend(settings["backend"], seed=settings["seed"])
    pol = VqcPolicy(space, backend, layers=settings["layers"], shots=settings["shots"])
    rng = np.random.default_rng(settings["seed"])
    p0 = pol.get_params()
    p0[: pol.n_theta] = rng.normal(0.0, settings["init_sigma"], pol.n_theta)
    pol.set_params(p0)
    t0 = time.perf_counter()
    trace = train_spsa(pol, pol.probs_with, training_envs(settings["batch"], BLOCKS_PER_EPISODE),
                       settings["iterations"], rng, a=settings["spsa_a"], c=settings["spsa_c"])
    pol.training.update({**settings, "blocks_per_episode": BLOCKS_PER_EPISODE, "env": "surrogate",
                         "train_seconds": time.perf_counter() - t0, "shots_used": pol.shots_used,
                         "circuits": pol.circuits, "reward_trace": trace})
    return pol


def main(out_dir: str = "lab_configs/control") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    soft = train_softmax()
    soft.save(out / "softmax_policy.json")
    print(f"softmax: {soft.training['train_seconds']:.1f} s")
    vqc = train_vqc()
    vqc.save(out / "vqc_policy.json")
    print(f"vqc: {vqc.training['train_seconds']:.1f} s, {vqc.shots_used} shots")


if __name__ == "__main__":
    main(*sys.argv[1:])
