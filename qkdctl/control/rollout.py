"""Episodes of a policy on a bench model, and the two trainers.

An environment is anything with `step(action) -> BlockReport` and `done` (the
SurrogateBench, or benchmarks/control_sim.SimBenchEnv on the simulated bench).
Episodes of a batch run in lockstep, so a quantum policy needs one sampler job per
block step for the whole batch.  The state of block t is the features of block
t - 1 (zeros for the first); its reward is qkdctl.control.features.reward (secret
bits per second of acquisition plus processing), scaled by REWARD_SCALE.

Trainers: `train_reinforce` (softmax policy; REINFORCE with a per-step mean
baseline and discount gamma, Williams 1992) and `train_spsa` (any policy with
flat parameters, here the VQC; two-sided SPSA, Spall 1998, both perturbations of
an iteration run on the same drift traces and bench seeds in one batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.control.features import N_FEATURES, block_features, reward, wall_seconds
from qkdctl.control.policy import Policy, SoftmaxPolicy, pick_actions
from qkdctl.core.errors import QkdInputError

REWARD_SCALE = 1e-5  # rewards in units of 1e5 secret bits/s

ProbsFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Batch:
    """Lockstep episodes: features (N, T, F), actions (N, T), rewards (N, T) in bits/s, reports."""

    features: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    reports: list = field(default_factory=list)

    def secret_rate_bps(self) -> float:
        """Secret bits per second of wall time over every block of the batch."""
        bits = sum(r.key_bits for ep in self.reports for r in ep if r.status == "ok")
        wall = sum(wall_seconds(r) for ep in self.reports for r in ep)
        return bits / wall if wall > 0 else 0.0


def run_batch(probs: ProbsFn, envs: Sequence, space, rng=None) -> Batch:
    """Run every env to its end; actions sampled with rng (anything with random(n): a
    Generator, or the SPSA pairing), or argmax when rng is None."""
    if not envs:
        raise QkdInputError("run_batch needs at least one environment")
    n = len(envs)
    hist: list[list[BlockReport]] = [[] for _ in range(n)]
    feats, acts, rews = [], [], []
    while not all(e.done for e in envs):
        if any(e.done for e in envs):
            raise QkdInputError("environments of one batch must have the same number of blocks")
        x = np.stack([block_features(h) for h in hist])
        a = pick_actions(probs(x), rng)
        reps = [e.step(space.action(int(k))) for e, k in zip(envs, a)]
        for h, r in zip(hist, reps):
            h.append(r)
        feats.append(x)
        acts.append(a)
        rews.append([reward(r) for r in reps])
    return Batch(np.stack(feats, axis=1), np.stack(acts, axis=1), np.asarray(rews, dtype=float).T, hist)


def evaluate(policy: Policy, make_envs: Callable[[], Sequence]) -> Batch:
    """Greedy (deterministic) run of `policy` on fresh environments."""
    return run_batch(policy.probs, make_envs(), policy.space, None)


def _returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = rewards[:, t] + gamma * acc
        out[:, t] = acc
    return out


def train_reinforce(policy: SoftmaxPolicy, make_envs: Callable[[np.random.Generator], Sequence],
                    iterations: int, rng: np.random.Generator, lr: float = 0.5, gamma: float = 0.3,
                    entropy_floor: float = 0.0) -> list[float]:
    """REINFORCE on batches from make_envs(rng); returns the mean scaled reward per iteration.

    lr: step on the mean gradient of log p times the baseline-subtracted return
    (returns in units of REWARD_SCALE); gamma: discount.
    """
    if iterations < 1:
        raise QkdInputError(f"iterations must be >= 1, got {iterations}")
    trace = []
    t0 = time.perf_counter()
    for _ in range(iterations):
        b = run_batch(policy.probs, make_envs(rng), policy.space, rng)
        r = b.rewards * REWARD_SCALE
        g = _returns(r, gamma)
        adv = g - g.mean(axis=0, keepdims=True)
        x = b.features.reshape(-1, N_FEATURES)
        grads = policy.grad_log_prob(x, b.actions.ravel())
        step = (grads * adv.ravel()[:, None]).mean(axis=0)
        policy.set_params(policy.get_params() + lr * step)
        trace.append(float(r.mean()))
    policy.training.update({"trainer": "reinforce", "iterations": iterations, "lr": lr, "gamma": gamma,
                            "train_seconds": time.perf_counter() - t0})
    return trace


def train_spsa(policy: Policy, probs_with: Callable[[np.ndarray, np.ndarray], np.ndarray],
               make_envs: Callable[[np.random.Generator], Sequence], iterations: int, rng: np.random.Generator,
               a: float = 0.3, c: float = 0.3) -> list[float]:
    """Maximize the mean scaled reward by SPSA; probs_with(features, per-row params) -> probs.

    Each iteration draws one batch of environments (make_envs(rng)) twice over with the same
    seeds: rows 0..N-1 use theta + c_k Delta, rows N..2N-1 theta - c_k Delta; actions are
    sampled with common random numbers.  Gains a_k = a / (k + 1 + A)^0.602, c_k = c / (k + 1)^0.101,
    A = iterations / 10.  Returns the mean scaled reward of both halves per iteration.
    """
    if iterations < 1:
        raise QkdInputError(f"iterations must be >= 1, got {iterations}")
    theta = policy.get_params()
    big_a = iterations / 10.0
    trace = []
    t0 = time.perf_counter()
    for k in range(iterations):
        ak = a / (k + 1 + big_a) ** 0.602
        ck = c / (k + 1) ** 0.101
        delta = rng.choice((-1.0, 1.0), size=theta.size)
        env_seed = int(rng.integers(2**63))
        act_seed = int(rng.integers(2**63))
        plus = make_envs(np.random.default_rng(env_seed))
        minus = make_envs(np.random.default_rng(env_seed))
        n = len(plus)
        rows = np.vstack([np.tile(theta + ck * delta, (n, 1)), np.tile(theta - ck * delta, (n, 1))])
        b = run_batch(lambda x: probs_with(x, rows), list(plus) + list(minus), policy.space,
                      _PairedUniforms(act_seed, n))
        r = b.rewards.mean(axis=1) * REWARD_SCALE
        j_plus, j_minus = r[:n].mean(), r[n:].mean()
        theta = theta + ak * (j_plus - j_minus) / (2 * ck) * delta
        trace.append(float((j_plus + j_minus) / 2))
    policy.set_params(theta)
    policy.training.update({"trainer": "spsa", "iterations": iterations, "spsa_a": a, "spsa_c": c,
                            "train_seconds": time.perf_counter() - t0})
    return trace


class _PairedUniforms:
    """Uniforms for 2n lockstep episodes where episode i and n + i share their draws."""

    def __init__(self, seed: int, n: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._n = n

    def random(self, size: int) -> np.ndarray:
        u = self._rng.random(self._n)
        return np.concatenate([u, u])[:size]
