"""Tomographic polarization compensation: invert the received rotation in closed form.

From the newest block's click matrix the tuner reconstructs Bob's total rotation
T = C F (controller C after fiber F, as SU(2)) up to the mirror ambiguity of
`received_rotation_candidates`, turns it into fiber candidates F_i = C^dagger T_i
using the calibration at the settings that block was taken with, picks one,
and asks the calibration for settings realising F^dagger (starting from the
present settings so the controller moves little).

Mirror choice (docs/qml.md): the two candidates give identical statistics at one
controller setting, but map to different fibers F_1, F_2; at another setting C'
the fiber (drifting slowly) must be the same.  So the candidate is chosen by
consistency with the previous block: if that block had other settings, the
candidate closest to any of its fiber candidates wins (the wrong ones disagree
unless C' C^dagger commutes with the mirror).  When that test is not decisive
(same or nearly the same settings, or a rotation near identity where both
branches are close) the branch closest to the one chosen before is kept.  The very first choice is a guess, corrected one
block after the controller has moved.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.tune.base import Probe, Proposal, Tuner
from qkdctl.tune.polarization import (
    ControllerCalibration,
    measured_components,
    received_rotation_candidates,
    so3_from_su2,
    su2_fidelity,
    su2_from_rotation,
    visibility,
)


def controller_settings(params: Mapping[str, float], n_settings: int) -> tuple[float, ...]:
    """(pol.1, ..., pol.N) from an operating-parameter mapping; QkdInputError if one is missing."""
    missing = [f"pol.{i}" for i in range(1, n_settings + 1) if f"pol.{i}" not in params]
    if missing:
        raise QkdInputError(f"operating parameters lack polarization settings {missing}")
    return tuple(float(params[f"pol.{i}"]) for i in range(1, n_settings + 1))


def settings_params(settings: Sequence[float]) -> dict[str, float]:
    """{"pol.1": s1, ...} for a settings tuple."""
    return {f"pol.{i}": float(v) for i, v in enumerate(settings, start=1)}


class TomographicTuner(Tuner):
    """Closed-form compensation from BB84 click statistics (no probes).

    qber_threshold: abort threshold of the link; deadband_fraction: do nothing while
    the QBER caused by the rotation (the optical QBER above the visibility floor,
    (1 - z_H / v) / 2 and (1 - x_D / v) / 2) is below deadband_fraction *
    qber_threshold; min_clicks: fewest clicks per contrast to trust a block;
    pool_blocks: click matrices of up to this many newest blocks taken at the same
    settings are summed (less noise while the tuner is idle); max_chi2: largest
    chi^2 per residual of the two-setting fit before the reference block is dropped.
    """

    name = "tomographic"

    def __init__(self, calibration: ControllerCalibration, qber_threshold: float = 0.11,
                 deadband_fraction: float = 0.02, min_clicks: int = 200, pool_blocks: int = 4,
                 max_chi2: float = 25.0) -> None:
        if calibration is None:
            raise QkdInputError("tomographic tuner needs the polarization controller's calibration")
        if not 0.0 < qber_threshold < 0.5:
            raise QkdInputError(f"qber_threshold must lie in (0, 0.5), got {qber_threshold}")
        if not 0.0 <= deadband_fraction < 1.0:
            raise QkdInputError(f"deadband_fraction must lie in [0, 1), got {deadband_fraction}")
        if min_clicks < 1:
            raise QkdInputError(f"min_clicks must be >= 1, got {min_clicks}")
        self.calibration = calibration
        self.deadband_qber = deadband_fraction * qber_threshold
        self.min_clicks = int(min_clicks)
        if pool_blocks < 1:
            raise QkdInputError(f"pool_blocks must be >= 1, got {pool_blocks}")
        self.pool_blocks = int(pool_blocks)
        self.max_chi2 = float(max_chi2)
        self.decisive_chi2 = 25.0  # chi^2 gap between mirror branches that counts as resolved
        self.weak_chi2 = 4.0  # below this gap the fit says nothing about the mirror branch
        self._anchor: np.ndarray | None = None  # fiber rotation of the last resolved fit
        # newest usable block: settings, measured (x, z) of H and D, visibility, fewest clicks
        self._last: tuple | None = None
        # newest usable block whose settings differ from the newest one's (mirror reference)
        self._ref: tuple | None = None

    def _pool(self, history: Sequence[BlockReport], params: Mapping[str, float]):
        """(settings, summed click matrix) of the newest blocks taken with the newest block's settings."""
        n = self.calibration.n_settings
        settings, total = None, None
        for rep in reversed(history[-self.pool_blocks:]):
            cm = rep.counts.get("click_matrix") if rep.counts else None
            if cm is None:
                break
            has_pol = rep.params and all(f"pol.{i}" in rep.params for i in range(1, n + 1))
            s = controller_settings(rep.params if has_pol else params, n)
            if settings is None:
                settings, total = s, np.asarray(cm, dtype=float)
            elif np.allclose(s, settings, rtol=0, atol=1e-9):
                total = total + np.asarray(cm, dtype=float)
            else:
                break
        return None if settings is None else (settings, total)

    def _remember(self, entry: tuple) -> None:
        if self._last is not None:
            same = su2_fidelity(self.calibration.rotation(self._last[0]),
                                self.calibration.rotation(entry[0])) > 1 - 1e-9
            if not same:
                self._ref = self._last
        self._last = entry

    def fiber_candidates(self, click_matrix: object, settings: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Both fiber rotations F_i = C(settings)^dagger T_i consistent with a click matrix."""
        c_dag = np.conj(self.calibration.rotation(settings)).T
        t1, t2 = received_rotation_candidates(click_matrix)
        return c_dag @ t1, c_dag @ t2

    def _residuals(self, fiber: np.ndarray, block: tuple) -> np.ndarray:
        """sqrt(N) * (predicted - measured) (x, z) of H and D for one remembered block."""
        settings, (xz_h, xz_d), vis, n_min = block
        o = so3_from_su2(self.calibration.rotation(settings) @ fiber)
        pred = vis * np.concatenate([o[[0, 2], 2], o[[0, 2], 0]])
        return np.sqrt(n_min) * (pred - np.concatenate([xz_h, xz_d]))

    def _fit(self, cands: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int, str]:
        """Fiber rotation from the newest block, refined jointly with the reference block.

        Least squares over a small rotation exp(-i w.sigma/2) applied to each mirror
        candidate, on the newest and the reference block's components: at two
        settings the fit has first-order sensitivity to every rotation axis and no
        mirror ambiguity.  A reference that no longer fits (chi^2 per residual above
        `max_chi2`: the fiber jumped since) is dropped.
        """
        if self._ref is None:
            return self._undecided(cands, "single block")
        blocks = (self._last, self._ref)
        fits = []
        for f0 in cands:
            def resid(w: np.ndarray, f0: np.ndarray = f0) -> np.ndarray:
                f = su2_from_rotation(Rotation.from_rotvec(w)) @ f0
                return np.concatenate([self._residuals(f, b) for b in blocks])
            sol = least_squares(resid, np.zeros(3), method="lm")
            fits.append((float(np.sum(sol.fun**2)), su2_from_rotation(Rotation.from_rotvec(sol.x)) @ f0))
        best = int(np.argmin([c for c, _ in fits]))
        chi2 = fits[best][0] / 8.0
        if chi2 > self.max_chi2:
            self._ref = None
            return self._undecided(cands, f"reference stale (chi2/residual {chi2:.1f})")
        gap = fits[1 - best][0] - fits[best][0]
        if gap < self.weak_chi2:
            return self._undecided((fits[0][1], fits[1][1]), f"two-setting fit not decisive (gap {gap:.1f})")
        if gap < self.decisive_chi2:
            return fits[best][1], best, f"two-setting fit (weak: mirror gap {gap:.1f})"
        self._anchor = fits[best][1]
        return fits[best][1], best, f"two-setting fit (chi2/residual {chi2:.1f}, mirror gap {gap:.0f})"

    def _undecided(self, cands: tuple[np.ndarray, np.ndarray], why: str) -> tuple[np.ndarray, int, str]:
        """Mirror branch closest to the last decisively resolved fiber (branch 0 if none)."""
        if self._anchor is None:
            return cands[0], 0, why + "; mirror guessed (branch 0)"
        k = int(np.argmax([su2_fidelity(f, self._anchor) for f in cands]))
        return cands[k], k, why + "; mirror from last resolved fit"

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """Settings that undo the fiber rotation seen in the newest block (None in the deadband)."""
        if not history:
            return None
        n = self.calibration.n_settings
        current = controller_settings(params, n)
        pooled = self._pool(history, params)
        if pooled is None:
            return None
        block_settings, cm = pooled
        xz_h, xz_d, min_clicks = measured_components(cm)
        if min_clicks < self.min_clicks:
            return None
        self._remember((block_settings, (xz_h, xz_d), visibility(cm), min_clicks))
        fiber, choice, how = self._fit(self.fiber_candidates(cm, block_settings))
        vis = visibility(cm)
        e_rot = max(0.5 * (1.0 - xz_h[1] / vis), 0.5 * (1.0 - xz_d[0] / vis))
        if e_rot < self.deadband_qber:
            return None
        target = np.conj(fiber).T
        inv = self.calibration.settings_for(target, start=current)
        return Proposal(
            params=settings_params(inv.settings),
            reason=(f"QBER from rotation {e_rot:.4f} (visibility {vis:.4f}) above deadband "
                    f"{self.deadband_qber:.4f}: "
                    f"invert reconstructed rotation (mirror branch {choice} by {how}; "
                    f"settings fidelity {inv.fidelity:.5f})"),
            extra={"fit_fidelity": inv.fidelity, "mirror_branch": choice},
        )
