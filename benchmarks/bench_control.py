"""`qkdctl bench control`: adaptive protocol control against fixed settings, same drift.

The drift is qkdctl.control.surrogate.benchmark_trace: four equal phases of
(channel RTT, polarization drift) = (0.05 ms, 0.2), (10 ms, 0.2), (10 ms, 1.5),
(0.05 ms, 1.5 rad/sqrt(s)).  Contestants: today's defaults (0.05 s blocks, Cascade
biconf as `auto` picks in-process, 300 ps gate, P(Z) 0.7: the baseline), every fixed action
of the action space (the best of them, chosen with hindsight on this very drift,
is the grid-best oracle), the softmax policy (REINFORCE) and the VQC policy (SPSA
on Aer).  Full runs evaluate the shipped policies (lab_configs/control/, trained by
benchmarks/train_control.py on the surrogate; their training seconds and shots are
the ones recorded when they were trained); quick runs train small ones in the run
(a tenth of the iterations).  Before anything on the simulated bench is timed, one
block per (block length, method) is processed untimed (numba kernels, LDPC codes).

Figures: secret bits per second of wall time (acquisition + processing) on the
surrogate (48 blocks; quick 24) and on the simulated bench (SimBench + the real
pipeline, benchmarks/control_sim.py; 8 blocks; quick 4: defaults, grid-best,
softmax, VQC only), training seconds and circuit shots.  Full runs add a sweep over
9 simulated-bench seeds (default, the two best fixed actions on the simulated bench in
this run, softmax, VQC): one seed's 8 blocks are too few on their own.  Results:
docs/control.md.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import result
from pathlib import Path

from benchmarks.control_sim import SimBenchEnv, warm_up
from benchmarks.train_control import SOFTMAX, VQC, scaled, train_softmax, train_vqc
from qkdctl.control.actions import ActionSpace
from qkdctl.control.policy import FixedPolicy, Policy, load_policy
from qkdctl.control.rollout import evaluate
from qkdctl.control.surrogate import benchmark_envs, benchmark_trace

DEFAULTS = ActionSpace((0.05, 0.05), ("cascade-biconf", "cascade-biconf"), (300.0, 300.0), (0.7, 0.7))
"""Today's settings as a one-action space (lab_configs/sim_bench.toml: 0.05 s, auto -> cascade-biconf, 300 ps,
P(Z) 0.7)."""
EVAL_SEED = 7
POLICY_DIR = Path(__file__).resolve().parents[1] / "lab_configs" / "control"


def policies(quick: bool) -> tuple[Policy, Policy]:
    """(softmax, vqc): trained now (quick) or the shipped ones (full)."""
    if quick:
        return train_softmax(scaled(SOFTMAX, quick)), train_vqc(scaled(VQC, quick))
    from qkdctl.qml.backends import open_backend

    backend = open_backend(VQC["backend"], seed=VQC["seed"])
    return load_policy(POLICY_DIR / "softmax_policy.json"), load_policy(POLICY_DIR / "vqc_policy.json", backend)


def _sim_envs(n_blocks: int):
    return lambda: [SimBenchEnv(benchmark_trace(n_blocks), EVAL_SEED)]


def _score(policy: Policy, make_envs) -> tuple[float, float, list, int]:
    """Secret bits/s, evaluation seconds, actions, blocks whose reconciliation protocol failed."""
    envs = make_envs()
    t0 = time.perf_counter()
    b = evaluate(policy, lambda: envs)
    failures = sum(getattr(e, "protocol_failures", 0) for e in envs)
    return b.secret_rate_bps(), time.perf_counter() - t0, b.actions[0].tolist(), failures


def run(quick: bool) -> list[dict]:
    """One result per (environment, contestant); baseline: today's defaults in the same run."""
    space = ActionSpace()
    n_sur, n_sim = (24, 4) if quick else (48, 8)
    soft, vqc = policies(quick)
    fixed = {f"fixed[{k}]": FixedPolicy(space, k) for k in range(space.n_actions)}
    out = []
    surrogate_fixed: dict[str, float] = {}
    for env_name, make_envs, n in (("surrogate", benchmark_envs(n_sur, EVAL_SEED), n_sur),
                                   ("simbench", _sim_envs(n_sim), n_sim)):
        if env_name == "simbench":
            warm_up(space)
        rows = {"default": (FixedPolicy(DEFAULTS, 0), {})}
        if env_name == "surrogate" or not quick:
            rows.update({name: (pol, {}) for name, pol in fixed.items()})
        rows["softmax"] = (soft, {"train_seconds": soft.training["train_seconds"], "shots": 0,
                                  "train_iterations": soft.training["iterations"]})
        rows["vqc"] = (vqc, {"train_seconds": vqc.training["train_seconds"], "shots": vqc.training["shots_used"],
                             "train_iterations": vqc.training["iterations"], "backend": VQC["backend"]})
        scores = {}
        for name, (pol, extra) in rows.items():
            shots0 = getattr(pol, "shots_used", 0)
            bps, secs, actions, failures = _score(pol, make_envs)
            scores[name] = (bps, secs, actions, {**extra, "eval_shots": getattr(pol, "shots_used", 0) - shots0,
                                                 "protocol_failures": failures})
        if env_name == "simbench" and quick:  # the grid-best action of the surrogate, measured here
            best_k = max(range(space.n_actions), key=lambda k: surrogate_fixed[f"fixed[{k}]"])
            bps, secs, actions, failures = _score(fixed[f"fixed[{best_k}]"], make_envs)
            scores[f"fixed[{best_k}]"] = (bps, secs, actions, {"grid_best_from": "surrogate",
                                                               "protocol_failures": failures})
        fixed_scores = {k: v[0] for k, v in scores.items() if k.startswith("fixed[")}
        best = max(fixed_scores, key=fixed_scores.get)
        base_bps, base_s = scores["default"][0], scores["default"][1]
        for name, (bps, secs, actions, extra) in scores.items():
            out.append(result(f"control/{env_name}/{name}", n, secs, "blocks/s", "control/default", base_s,
                              env=env_name, policy=name, secret_bps=bps, default_secret_bps=base_bps,
                              vs_default=bps / base_bps if base_bps else None,
                              grid_best=best, vs_grid_best=bps / fixed_scores[best] if fixed_scores[best] else None,
                              actions=actions, **extra))
        if env_name == "surrogate":
            surrogate_fixed = fixed_scores
        else:
            sim_fixed = fixed_scores
    if quick:
        return out
    top2 = sorted(sim_fixed, key=sim_fixed.get, reverse=True)[:2]
    return out + seed_sweep(space, soft, vqc, n_sim, [int(name[6:-1]) for name in top2])


SWEEP_SEEDS = tuple(range(7, 16))
"""Simulated-bench seeds of the sweep (full runs): 8 blocks per seed are too few for one seed."""


def seed_sweep(space: ActionSpace, soft: Policy, vqc: Policy, n_blocks: int, fixed: list[int]) -> list[dict]:
    """Default, the fixed actions `fixed` (indices), softmax and VQC on the simulated bench for
    every seed of SWEEP_SEEDS: mean, min and max of the per-seed secret bits/s."""
    contestants = {"default": FixedPolicy(DEFAULTS, 0), **{f"fixed[{k}]": FixedPolicy(space, k) for k in fixed},
                   "softmax": soft, "vqc": vqc}
    per_seed = {name: [] for name in contestants}
    seconds = dict.fromkeys(contestants, 0.0)
    failures = dict.fromkeys(contestants, 0)
    for seed in SWEEP_SEEDS:
        for name, pol in contestants.items():
            bps, secs, _, fail = _score(pol, lambda: [SimBenchEnv(benchmark_trace(n_blocks), seed)])
            per_seed[name].append(bps)
            seconds[name] += secs
            failures[name] += fail
    base = float(np.mean(per_seed["default"]))
    out = []
    for name, rates in per_seed.items():
        wins = sum(r > d for r, d in zip(rates, per_seed["default"]))
        out.append(result(f"control/simbench-seeds/{name}", n_blocks * len(SWEEP_SEEDS), seconds[name], "blocks/s",
                          "control/simbench-seeds/default", seconds["default"], env="simbench-seeds", policy=name,
                          seeds=list(SWEEP_SEEDS), secret_bps=float(np.mean(rates)),
                          secret_bps_min=float(np.min(rates)), secret_bps_max=float(np.max(rates)),
                          vs_default=float(np.mean(rates)) / base, seeds_beating_default=wins,
                          per_seed_bps=[float(r) for r in rates], protocol_failures=failures[name]))
    return out
