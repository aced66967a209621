"""Calibrations: controller settings -> SU(2) polarization rotation, and back.

Conventions (Jones calculus, see docs/drivers.md):
* Jones vectors in the (H, V) basis: H = (1, 0), V = (0, 1), D = (1, 1)/sqrt 2.
* A linear retarder with retardance `delta_rad` and fast axis at `theta_rad` from H
  (counter-clockwise looking into the beam) is
      W(delta, theta) = R(-theta) @ diag(exp(-i delta/2), exp(+i delta/2)) @ R(theta),
      R(theta) = [[cos theta, sin theta], [-sin theta, cos theta]],
  which has determinant 1, so every rotation built here is in SU(2).
* Elements are listed in the order light passes them: U = W_n @ ... @ W_1.
* Rotations are compared up to global phase (U and -U are the same rotation of the
  Poincare sphere): fidelity(U, V) = |tr(U^dagger V)| / 2, 1 iff equal up to phase.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from qkdctl.core.errors import QkdInputError


def rotation_matrix(theta_rad: float) -> np.ndarray:
    """The frame rotation R(theta) (theta in rad)."""
    c, s = np.cos(theta_rad), np.sin(theta_rad)
    return np.array([[c, s], [-s, c]], dtype=complex)


def retarder(delta_rad: float, theta_rad: float) -> np.ndarray:
    """Jones matrix (SU(2)) of a linear retarder: retardance `delta_rad`, fast axis at `theta_rad`."""
    phase = np.exp(0.5j * delta_rad)
    core = np.array([[1.0 / phase, 0.0], [0.0, phase]], dtype=complex)
    return rotation_matrix(-theta_rad) @ core @ rotation_matrix(theta_rad)


def fidelity(u: np.ndarray, v: np.ndarray) -> float:
    """Phase-insensitive overlap |tr(u^dagger v)| / 2 of two 2x2 unitaries (1 = same rotation)."""
    return float(abs(np.trace(np.conj(u).T @ v)) / 2.0)


def check_su2(u: np.ndarray, *, atol: float = 1e-9) -> np.ndarray:
    """Return `u` as a complex 2x2 array; `QkdInputError` unless unitary (any global phase)."""
    arr = np.asarray(u, dtype=complex)
    if arr.shape != (2, 2):
        raise QkdInputError(f"target rotation must be a 2x2 matrix, got shape {arr.shape}")
    if not np.allclose(arr.conj().T @ arr, np.eye(2), atol=atol):
        raise QkdInputError("target rotation is not unitary (U^dagger U != 1)")
    return arr


@dataclass(frozen=True)
class InverseResult:
    """Settings found for a target rotation, and how well they realise it (fidelity, 1 = exact)."""

    settings: tuple[float, ...]
    fidelity: float


class Calibration(ABC):
    """Maps a settings tuple (controller units) to an SU(2) rotation, and approximately back."""

    n_settings: int
    bounds: tuple[tuple[float, float], ...]

    @abstractmethod
    def rotation(self, settings: Sequence[float]) -> np.ndarray:
        """The 2x2 SU(2) Jones matrix realised by `settings`."""

    def _check(self, settings: Sequence[float]) -> np.ndarray:
        arr = np.asarray(settings, dtype=float)
        if arr.shape != (self.n_settings,):
            raise QkdInputError(f"{type(self).__name__}: {arr.size} settings given; {self.n_settings} needed")
        return arr

    def settings_for(
        self,
        target: np.ndarray,
        *,
        start: Sequence[float] | None = None,
        rng: np.random.Generator | None = None,
        n_starts: int = 8,
        tol: float = 1e-10,
    ) -> InverseResult:
        """Settings (within `bounds`) whose rotation best matches `target`, by L-BFGS-B.

        Starts from `start` (e.g. the present settings, so a tuner moves little), then
        from `n_starts` points of a deterministic Halton sequence, or uniform points
        drawn from `rng` if given; stops early once 1 - fidelity^2 < `tol`.
        """
        target = check_su2(target)
        if n_starts < 1:
            raise QkdInputError(f"n_starts must be >= 1, got {n_starts}")
        low = np.array([b[0] for b in self.bounds])
        span = np.array([b[1] - b[0] for b in self.bounds])

        def cost(x: np.ndarray) -> float:
            return 1.0 - fidelity(self.rotation(low + x * span), target) ** 2

        if rng is None:
            starts = qmc.Halton(d=self.n_settings, scramble=False).random(n_starts + 1)[1:]
        else:
            starts = rng.random((n_starts, self.n_settings))
        if start is not None:
            starts = np.vstack([np.clip((self._check(start) - low) / span, 0.0, 1.0), starts])
        best_x, best_cost = starts[0], np.inf
        for x0 in starts:
            res = minimize(cost, x0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * self.n_settings,
                           options={"ftol": 1e-15, "gtol": 1e-12})
            if res.fun < best_cost:
                best_x, best_cost = res.x, float(res.fun)
            if best_cost < tol:
                break
        settings = tuple(float(v) for v in low + best_x * span)
        return InverseResult(settings, fidelity(self.rotation(settings), target))


@dataclass(frozen=True)
class PaddleCalibration(Calibration):
    """Three fiber paddles (MPC320 style): lambda/4, lambda/2, lambda/4 retarders whose fast
    axes turn with the paddle angles (deg, 0..170).

    axis of paddle k = angle_k + angle_offsets_deg[k]; retardances_rad are the loops'
    retardances (nominal pi/2, pi, pi/2; fit them on the bench).
    """

    retardances_rad: tuple[float, float, float] = (np.pi / 2, np.pi, np.pi / 2)
    angle_offsets_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    limits_deg: tuple[float, float] = (0.0, 170.0)
    n_settings: ClassVar[int] = 3

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        return (self.limits_deg,) * 3

    def rotation(self, settings: Sequence[float]) -> np.ndarray:
        angles_rad = np.deg2rad(self._check(settings) + np.asarray(self.angle_offsets_deg))
        u = np.eye(2, dtype=complex)
        for delta, theta in zip(self.retardances_rad, angles_rad):
            u = retarder(delta, theta) @ u
        return u


@dataclass(frozen=True)
class SqueezerCalibration(Calibration):
    """Four fiber squeezers (EPC style) with axes at 0, 45, 0, 45 deg; settings in mV.

    Retardance of squeezer k = pi * V_k / v_pi_mv[k] + retardance_offsets_rad[k].
    """

    v_pi_mv: tuple[float, float, float, float] = (2500.0, 2500.0, 2500.0, 2500.0)
    axes_deg: tuple[float, float, float, float] = (0.0, 45.0, 0.0, 45.0)
    retardance_offsets_rad: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    limits_mv: tuple[float, float] = (-5000.0, 5000.0)
    n_settings: ClassVar[int] = 4

    def __post_init__(self) -> None:
        if any(not v > 0 for v in self.v_pi_mv):
            raise QkdInputError(f"v_pi_mv must all be > 0, got {self.v_pi_mv}")

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        return (self.limits_mv,) * 4

    def rotation(self, settings: Sequence[float]) -> np.ndarray:
        volts_mv = self._check(settings)
        u = np.eye(2, dtype=complex)
        for v, v_pi, axis, offset in zip(volts_mv, self.v_pi_mv, self.axes_deg, self.retardance_offsets_rad):
            u = retarder(np.pi * v / v_pi + offset, np.deg2rad(axis)) @ u
        return u
