"""Model-free polarization tuners on measured QBER: SPSA and Nelder-Mead (the baselines).

Both treat the controller as a black box: cost(settings) = e_Z + e_X measured by a
probe (a short acquisition with those settings, `Probe`), at most `probe_budget`
probes per block.  Settings are searched in units of each bound's span.  They need
no calibration model beyond the settings' bounds, and no inversion.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.tune.base import Probe, Proposal, Tuner
from qkdctl.tune.polarization import optical_qber
from qkdctl.tune.tomographic import controller_settings, settings_params


def _cost(rep: BlockReport) -> float:
    cm = rep.counts.get("click_matrix") if rep.counts else None
    if cm is None:
        raise QkdInputError("probe report has no click_matrix")
    e_z, e_x = optical_qber(cm)
    return float(e_z + e_x)


class _ProbeTuner(Tuner):
    """Shared checks: bounds from the calibration, deadband on the newest block."""

    def __init__(self, calibration, probe_budget: int, probe_s: float, qber_threshold: float,
                 deadband_fraction: float) -> None:
        if calibration is None:
            raise QkdInputError(f"{self.name} tuner needs the controller calibration (for its bounds)")
        if probe_budget < 2:
            raise QkdInputError(f"probe_budget must be >= 2 per block, got {probe_budget}")
        if not probe_s > 0:
            raise QkdInputError(f"probe_s must be > 0 s, got {probe_s}")
        if not 0.0 <= deadband_fraction < 1.0:
            raise QkdInputError(f"deadband_fraction must lie in [0, 1), got {deadband_fraction}")
        self.calibration = calibration
        self.probe_budget = int(probe_budget)
        self.probe_s = float(probe_s)
        self.deadband = 2.0 * deadband_fraction * qber_threshold
        bounds = np.asarray(calibration.bounds, dtype=float)
        self.low, self.span = bounds[:, 0], bounds[:, 1] - bounds[:, 0]

    def _to_settings(self, x: np.ndarray) -> dict[str, float]:
        return settings_params(self.low + np.clip(x, 0.0, 1.0) * self.span)

    def _start(self, history: Sequence[BlockReport], params: Mapping[str, float],
               probe: Probe | None) -> np.ndarray | None:
        if not history:
            return None
        if probe is None:
            raise QkdInputError(f"{self.name} tuner needs probe measurements; none offered")
        if _cost(history[-1]) < self.deadband:
            return None
        current = np.asarray(controller_settings(params, self.calibration.n_settings))
        return (current - self.low) / self.span


class SpsaTuner(_ProbeTuner):
    """Simultaneous-perturbation stochastic approximation (Spall 1992), constant gains.

    Each iteration spends 2 probes at x +- c*Delta (Delta random +-1 per setting) and
    steps x -= a * (y+ - y-) / (2c) * Delta; probe_budget // 2 iterations per block.
    a, c are in units of the settings' span.  rng: the perturbation draws.
    """

    name = "spsa"

    def __init__(self, calibration, rng: np.random.Generator, a: float = 0.005, c: float = 0.005,
                 probe_budget: int = 4, probe_s: float = 1e-3, qber_threshold: float = 0.11,
                 deadband_fraction: float = 0.02) -> None:
        super().__init__(calibration, probe_budget, probe_s, qber_threshold, deadband_fraction)
        if not isinstance(rng, np.random.Generator):
            raise QkdInputError("spsa tuner needs a numpy.random.Generator (option 'seed')")
        if not (a > 0 and c > 0):
            raise QkdInputError(f"spsa gains must be > 0, got a={a}, c={c}")
        self.rng, self.a, self.c = rng, float(a), float(c)

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """SPSA steps on probe-measured e_Z + e_X (None in the deadband)."""
        x = self._start(history, params, probe)
        if x is None:
            return None
        used = 0
        while used + 2 <= self.probe_budget:
            delta = self.rng.choice((-1.0, 1.0), size=x.size)
            y_plus = _cost(probe(self._to_settings(x + self.c * delta), self.probe_s))
            y_minus = _cost(probe(self._to_settings(x - self.c * delta), self.probe_s))
            used += 2
            x = np.clip(x - self.a * (y_plus - y_minus) / (2 * self.c) * delta, 0.0, 1.0)
        return Proposal(self._to_settings(x), f"SPSA: {used // 2} steps on probed QBER", probes_used=used)


class NelderMeadTuner(_ProbeTuner):
    """Nelder-Mead simplex (scipy) on probe-measured e_Z + e_X, probe_budget evaluations a block.

    initial_step: simplex size in units of the settings' span.  The best probed point
    is proposed only if it beats the first evaluation (the present settings).
    """

    name = "nelder-mead"

    def __init__(self, calibration, initial_step: float = 0.03, probe_budget: int = 8,
                 probe_s: float = 1e-3, qber_threshold: float = 0.11,
                 deadband_fraction: float = 0.02) -> None:
        super().__init__(calibration, probe_budget, probe_s, qber_threshold, deadband_fraction)
        if not 0 < initial_step < 0.5:
            raise QkdInputError(f"initial_step must lie in (0, 0.5), got {initial_step}")
        self.initial_step = float(initial_step)

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """One budget-limited simplex search from the present settings (None in the deadband)."""
        x0 = self._start(history, params, probe)
        if x0 is None:
            return None
        seen: list[tuple[float, np.ndarray]] = []

        def f(x: np.ndarray) -> float:
            if len(seen) >= self.probe_budget:
                return min(c for c, _ in seen)  # budget spent: no more measurements
            y = _cost(probe(self._to_settings(x), self.probe_s))
            seen.append((y, np.clip(x, 0.0, 1.0)))
            return y

        simplex = np.vstack([x0] + [x0 + self.initial_step * e for e in np.eye(x0.size)])
        minimize(f, x0, method="Nelder-Mead",
                 options={"initial_simplex": simplex, "maxfev": self.probe_budget})
        best_cost, best_x = min(seen, key=lambda t: t[0])
        if best_cost >= seen[0][0]:
            return Proposal({}, "Nelder-Mead: no probed point beat the present settings",
                            probes_used=len(seen))
        return Proposal(self._to_settings(best_x), f"Nelder-Mead: best of {len(seen)} probes "
                        f"(e_Z + e_X {best_cost:.4f})", probes_used=len(seen))
