"""A toy environment whose best action is known: LDPC when the channel is slow, else Cascade.

Each block reveals the next block's channel (slow with probability 1/2) through its
reconcile seconds per round trip (feature 8); the block pays 1e4 bits with the right
method, 1e2 with the wrong one.
"""

import numpy as np

from qkdctl.blockreport import BlockReport


class ToyEnv:
    def __init__(self, n_blocks, rng):
        self.n, self.t, self.rng = n_blocks, 0, rng
        self.slow = bool(rng.integers(0, 2))

    @property
    def done(self):
        return self.t >= self.n

    def step(self, action):
        right = action.method.startswith("ldpc") == self.slow
        self.slow = bool(self.rng.integers(0, 2))  # the next block's channel, shown in this report
        self.t += 1
        return BlockReport(block_id=self.t, duration_s=0.05, key_bits=10_000 if right else 100,
                           qber_z=0.01, qber_x=0.01, detections=10**6, method=action.method, round_trips=10,
                           stage_seconds={"reconcile": 10 * (1e-2 if self.slow else 1e-4)})


def toy_envs(batch, n_blocks=8):
    return lambda rng: [ToyEnv(n_blocks, np.random.default_rng(int(rng.integers(2**63)))) for _ in range(batch)]


def right_fraction(batch):
    """Fraction of blocks (after the first, which has no context) with the right method."""
    return float(np.mean(batch.rewards[:, 1:] > 5e3 / 0.2))
