"""The fiber: loss, propagation delay with slow drift, and drifting birefringence (SU(2))."""

from __future__ import annotations

import numpy as np

from firmware_sim.config import FiberConfig
from firmware_sim.physics.polarization import drift_step, random_su2

C_M_PER_S = 299_792_458.0


def transmission(cfg: FiberConfig) -> float:
    """Power transmission of the fiber: 10**(-(alpha*L + extra)/10)."""
    return 10.0 ** (-(cfg.loss_db_per_km * cfg.length_km + cfg.extra_loss_db) / 10.0)


def nominal_delay_ps(cfg: FiberConfig) -> float:
    """Propagation delay (ps) at time 0: L * n_g / c."""
    return cfg.length_km * 1e3 * cfg.group_index / C_M_PER_S * 1e12


class FiberState:
    """The fiber's time-dependent state: SU(2) rotation and delay (ps), advanced by `step`."""

    def __init__(self, cfg: FiberConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.rotation = random_su2(rng) if cfg.initial_rotation == "random" else np.eye(2, dtype=np.complex128)
        self.delay_ps = nominal_delay_ps(cfg)

    def step(self, dt_s: float) -> None:
        """Advance by dt_s: birefringence random walk and jumps, linear delay drift."""
        c = self.cfg
        self.rotation = drift_step(
            self.rotation, dt_s, c.drift_rad_per_sqrt_s, c.jump_rate_hz, c.jump_size_rad, self.rng
        )
        self.delay_ps += c.delay_drift_ps_per_s * dt_s
