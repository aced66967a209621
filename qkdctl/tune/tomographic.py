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
from scipy.stats import chi2 as chi2_dist
from scipy.stats import norm
from scipy.spatial.transform import Rotation

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.tune.base import Probe, Proposal, Tuner
from qkdctl.tune.polarization import (
    ControllerCalibration,
    chi2_given_rotation,
    component_sigmas,
    measured_components,
    optical_qber,
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
    """Closed-form compensation from BB84 click statistics (probes only after a jump).

    Deadband (statistical): nothing is done while the pooled click statistics are
    consistent with a perfectly compensated link at the settings in force (chi^2 of
    the four measured contrasts against v * the aligned prediction, binomial errors,
    below the (1 - significance) quantile of chi^2 with 3 degrees of freedom).
    Near alignment the residual rotation w (rotation vector of controller x fiber)
    has a first-order visible part w_y, corrected when that test rejects, and a
    hidden part (w_x, w_z) that BB84 statistics see only at second order and only
    up to the mirror sign.  Each hidden component is estimated from its own basis's
    QBER excess over the floor, e_Z - floor ~ (w_x^2 + w_y^2) / 4 and
    e_X - floor ~ (w_y^2 + w_z^2) / 4 (floor: a low quantile of the recent blocks'
    QBER, `floor_blocks`, `floor_quantile`), and corrected when significant
    (`_hidden_steps`).  Its sign is the mirror branch: from a decisive two-setting
    fit when there is one, else guessed and stepped by `mirror_probe_gain` only; the
    first evaluation at the new settings keeps the sign if the excess shrank and
    flips it if it grew.  (The one-block reconstruction of (w_x, w_z) is not used
    for small residuals: at block sizes it is noise, docs/qml.md.)  Corrections are
    damped by `gain`.  Residual rotations above `acquire_rad` are corrected in full.

    Jumps: when the newest block's QBER (max of e_Z, e_X) exceeds `jump_qber` the
    tuner stops waiting for its last proposal and uses the newest block alone;
    if a probe is offered and `probe_budget` >= 2 it measures two probes of
    `probe_s` right away, at the settings in force and at settings turned by
    `probe_offset_rad` about x (a setting change that resolves the mirror), fits
    the fiber to both and corrects in full.

    Lag: after a proposal the tuner waits for a block taken with the proposed
    settings (the engine applies a proposal made after block k from block k+2 on),
    at most `settle_blocks` blocks.  min_clicks: fewest clicks per contrast to trust
    a block; pool_blocks: click matrices of up to this many newest blocks at the
    same settings are summed; max_chi2: largest chi^2 per residual of the
    two-setting fit before its reference block is dropped.
    """

    name = "tomographic"

    def __init__(self, calibration: ControllerCalibration, significance: float = 1e-3,
                 gain: float = 0.9, mirror_probe_gain: float = 0.5, acquire_rad: float = 0.3,
                 min_clicks: int = 200, pool_blocks: int = 4, max_chi2: float = 25.0,
                 settle_blocks: int = 3, jump_qber: float = 0.01, probe_budget: int = 2,
                 probe_s: float = 2e-3, probe_offset_rad: float = 0.5, floor_blocks: int = 40,
                 floor_quantile: float = 0.2) -> None:
        if calibration is None:
            raise QkdInputError("tomographic tuner needs the polarization controller's calibration")
        if not 0.0 < significance < 0.5:
            raise QkdInputError(f"significance must lie in (0, 0.5), got {significance}")
        if not (0.0 < gain <= 1.0 and 0.0 < mirror_probe_gain <= 1.0):
            raise QkdInputError(f"gain and mirror_probe_gain must lie in (0, 1], got {gain}, {mirror_probe_gain}")
        if not acquire_rad > 0.0:
            raise QkdInputError(f"acquire_rad must be > 0, got {acquire_rad}")
        if min_clicks < 1:
            raise QkdInputError(f"min_clicks must be >= 1, got {min_clicks}")
        if pool_blocks < 1:
            raise QkdInputError(f"pool_blocks must be >= 1, got {pool_blocks}")
        if settle_blocks < 0:
            raise QkdInputError(f"settle_blocks must be >= 0, got {settle_blocks}")
        if floor_blocks < 2 or not 0.0 <= floor_quantile <= 1.0:
            raise QkdInputError(f"need floor_blocks >= 2 and floor_quantile in [0, 1], got {floor_blocks}, {floor_quantile}")
        if not 0.0 < jump_qber < 0.5:
            raise QkdInputError(f"jump_qber must lie in (0, 0.5), got {jump_qber}")
        if probe_budget < 0 or not probe_s > 0 or not 0.0 < probe_offset_rad < np.pi:
            raise QkdInputError(f"need probe_budget >= 0, probe_s > 0 s, probe_offset_rad in (0, pi); "
                                f"got {probe_budget}, {probe_s}, {probe_offset_rad}")
        self.calibration = calibration
        self.chi2_visible = float(chi2_dist.isf(significance, 3))
        self.z_hidden = float(norm.isf(significance / 2))
        self.gain, self.mirror_probe_gain = float(gain), float(mirror_probe_gain)
        self.acquire_rad = float(acquire_rad)
        self.min_clicks = int(min_clicks)
        self.pool_blocks = int(pool_blocks)
        self.max_chi2 = float(max_chi2)
        self.settle_blocks = int(settle_blocks)
        self.jump_qber = float(jump_qber)
        self.probe_budget, self.probe_s = int(probe_budget), float(probe_s)
        self.probe_offset_rad = float(probe_offset_rad)
        # per hidden axis (0 = x, 2 = z): (sign of w it last assumed, excess before that step or 0)
        self._hidden: dict[int, tuple[float, float]] = {}
        self._hidden_fresh = False  # a hidden step was proposed and not yet evaluated in force
        self._qber_means: list[float] = []  # per-block (e_Z + e_X) / 2, for the floor
        self.floor_blocks, self.floor_quantile = int(floor_blocks), float(floor_quantile)
        self.decisive_chi2 = 25.0  # chi^2 gap between mirror branches that counts as resolved
        self.weak_chi2 = 4.0  # below this gap the fit says nothing about the mirror branch
        self._anchor: np.ndarray | None = None  # fiber rotation of the last resolved fit
        # newest usable block: settings, measured (x, z) of H and D, visibility, fewest clicks
        self._last: tuple | None = None
        # newest usable block whose settings differ from the newest one's (mirror reference)
        self._ref: tuple | None = None
        # settings of the last proposal not yet seen in force, and blocks waited for them
        self._awaiting: tuple[float, ...] | None = None
        self._waited = 0

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

    def _fit(self, cands: tuple[np.ndarray, np.ndarray],
             converged_resolves: bool = False) -> tuple[np.ndarray, int, str]:
        """Fiber rotation from the newest block, refined jointly with the reference block.

        Least squares over a small rotation exp(-i w.sigma/2) applied to each mirror
        candidate, on the newest and the reference block's components: at two
        settings the fit has first-order sensitivity to every rotation axis and no
        mirror ambiguity.  A reference that no longer fits (chi^2 per residual above
        `max_chi2`: the fiber jumped since) is dropped.  converged_resolves: the two
        settings are known to differ by a large non-y turn (the jump probes), so both
        branches running into one minimum resolves the mirror.
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
        if converged_resolves and su2_fidelity(fits[0][1], fits[1][1]) > 1 - 1e-6:
            self._anchor = fits[best][1]  # both branches ran into one minimum: no mirror left
            return fits[best][1], best, f"two-setting fit (chi2/residual {chi2:.1f}, both branches converge)"
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

    def _settling(self, history: Sequence[BlockReport]) -> bool:
        """True while the last proposal has not yet reached a block (engine lag)."""
        if self._awaiting is None:
            return False
        n = self.calibration.n_settings
        rep = history[-1]
        seen = rep.params and all(f"pol.{i}" in rep.params for i in range(1, n + 1))
        if seen and np.allclose(controller_settings(rep.params, n), self._awaiting, rtol=0, atol=1e-6):
            self._awaiting = None
            return False
        self._waited += 1
        if self._waited > self.settle_blocks:
            self._awaiting = None
            return False
        return True

    def _jumped(self, history: Sequence[BlockReport]) -> bool:
        """True when the newest block's QBER (max of e_Z, e_X from its click matrix) exceeds jump_qber."""
        cm = history[-1].counts.get("click_matrix") if history[-1].counts else None
        if cm is None:
            return False
        e_z, e_x = optical_qber(cm)
        return bool(max(e_z, e_x) > self.jump_qber)

    def _entry(self, settings: Sequence[float], cm: np.ndarray) -> tuple | None:
        """Remembered form of a block (settings, (x, z) of H and D, visibility, fewest clicks), or None."""
        xz_h, xz_d, min_clicks = measured_components(cm)
        if min_clicks < self.min_clicks:
            return None
        return (tuple(settings), (xz_h, xz_d), visibility(cm), min_clicks)

    def _floor(self) -> tuple[float, float] | None:
        """(QBER floor, its standard error) from the recent blocks, or None while too few are seen.

        The floor (dark counts, afterpulses, multi-photon clicks: QBER at perfect
        alignment) is the `floor_quantile` quantile of the per-block mean (e_Z + e_X) / 2
        over the last `floor_blocks` blocks: the tuner keeps most blocks aligned, so a
        low quantile sees the floor and not the drift.
        """
        vals = np.asarray(self._qber_means[-self.floor_blocks:])
        if vals.size < self.floor_blocks // 2:
            return None
        return float(np.quantile(vals, self.floor_quantile)), float(np.std(vals) / np.sqrt(vals.size) * 2.0)

    def _hidden_steps(self, cm: np.ndarray, omega: np.ndarray, resolved: bool, fresh: bool) -> tuple[np.ndarray, list[str]]:
        """Corrections of the hidden components (w_x, w_z) from the per-basis QBER excess.

        e_Z = floor + v (w_x^2 + w_y^2) / 4 and e_X = floor + v (w_y^2 + w_z^2) / 4: with
        the floor estimated (`_floor`; while unknown the cleaner basis stands in for it)
        and w_y measured at first order, each excess gives |w_x| or |w_z|.  Only a
        significant excess (z above the two-sided `significance` quantile) is acted on.
        The sign (mirror branch) comes from a decisive two-setting fit, else from the last
        step on that axis: on the first evaluation after it reached the bench the sign
        is kept if the excess shrank and flipped if it grew; a stale sign or a first
        guess (the reconstruction's) is stepped by `mirror_probe_gain` only.
        """
        c = np.asarray(cm, dtype=float)
        e = optical_qber(c)
        n = (c[:2, :2].sum(), c[2:, 2:].sum())
        sd = [np.sqrt(max(e[k] * (1 - e[k]), 1.0 / n[k]) / n[k]) if n[k] > 0 else 1.0 for k in (0, 1)]
        floor = self._floor()
        if floor is None:
            k_ref = int(np.argmin(e))
            floor = (e[k_ref], sd[k_ref])
        step, parts = np.zeros(3), []
        for k, axis, name in ((0, 0, "w_x"), (1, 2, "w_z")):
            excess = e[k] - floor[0] - omega[1] ** 2 / 4
            memory = self._hidden.get(axis)
            if excess < self.z_hidden * np.hypot(sd[k], floor[1]):
                if fresh and memory is not None:  # the last step worked: keep its sign, now settled
                    self._hidden[axis] = (memory[0], 0.0)
                continue
            size = 2.0 * np.sqrt(excess)
            if resolved:
                sign, gain, how = float(np.sign(omega[axis]) or 1.0), self.gain, "resolved by fit"
            elif memory is not None and fresh and memory[1] > 0:
                sign = memory[0] if excess < memory[1] else -memory[0]
                gain, how = self.gain, ("kept" if sign == memory[0] else "flipped") + " after last step"
            elif memory is not None:
                sign, gain, how = memory[0], self.mirror_probe_gain, "from an earlier step"
            else:
                sign, gain, how = float(np.sign(omega[axis]) or 1.0), self.mirror_probe_gain, "guessed"
            self._hidden[axis] = (sign, excess)
            step[axis] = gain * sign * size
            parts.append(f"hidden {name} {sign * size:+.4f} rad from e excess {excess:.5f} "
                         f"over floor {floor[0]:.5f}, sign {how}, gain {gain:.2f}")
        return step, parts

    def _reacquire(self, probe: Probe, current: tuple[float, ...]) -> Proposal | None:
        """After a jump: two probes (settings in force, and turned about x), joint fit, full correction."""
        offset = self.calibration.settings_for(_su2(np.array([self.probe_offset_rad, 0.0, 0.0]))
                                               @ self.calibration.rotation(current), start=current)
        entries = []
        for settings in (current, tuple(offset.settings)):
            rep = probe(settings_params(settings), self.probe_s)
            cm = rep.counts.get("click_matrix") if rep.counts else None
            entry = None if cm is None else self._entry(settings, np.asarray(cm, dtype=float))
            if entry is None:
                return Proposal({}, "jump: probe gave too few clicks; parameters kept", probes_used=len(entries) + 1)
            entries.append((entry, np.asarray(cm, dtype=float)))
        self._last = self._ref = None
        for entry, _ in entries:
            self._remember(entry)
        fiber, choice, how = self._fit(self.fiber_candidates(entries[1][1], entries[1][0][0]), True)
        self._hidden, self._hidden_fresh = {}, False
        inv = self.calibration.settings_for(np.conj(fiber).T, start=current)
        self._awaiting, self._waited = tuple(inv.settings), 0
        return Proposal(params=settings_params(inv.settings), probes_used=2,
                        reason=(f"jump (QBER above {self.jump_qber}): two probes, mirror branch {choice} by {how}; "
                                f"full correction, settings fidelity {inv.fidelity:.5f}"),
                        extra={"fit_fidelity": inv.fidelity, "mirror_branch": choice})

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """Settings that undo the significant part of the residual rotation (None in the deadband)."""
        if not history:
            return None
        n = self.calibration.n_settings
        current = controller_settings(params, n)
        newest = history[-1].counts.get("click_matrix") if history[-1].counts else None
        if newest is not None and np.all(np.isfinite(optical_qber(newest))):
            self._qber_means.append(float(np.mean(optical_qber(newest))))
            del self._qber_means[:-self.floor_blocks]
        jumped = self._jumped(history)
        if jumped:
            self._awaiting = None
            if probe is not None and self.probe_budget >= 2:
                return self._reacquire(probe, current)
        if self._settling(history):
            return None
        pooled = self._pool(history[-1:] if jumped else history, params)
        if pooled is None:
            return None
        block_settings, cm = pooled
        entry = self._entry(block_settings, cm)
        if entry is None:
            return None
        self._remember(entry)
        _, (xz_h, xz_d), _, _ = entry
        fiber, choice, how = self._fit(self.fiber_candidates(cm, block_settings))
        c_blk, c_cur = self.calibration.rotation(block_settings), self.calibration.rotation(current)
        measured = np.array([xz_h[0], xz_h[1], xz_d[0], xz_d[1]])
        # residual rotation (Bloch rotation vector) of controller x fiber at the settings in force
        omega = Rotation.from_matrix(so3_from_su2(c_cur @ fiber)).as_rotvec()
        # the settings in force predict the block's statistics through the block's own settings
        to_blk = c_blk @ np.conj(c_cur).T
        chi2_aligned = chi2_given_rotation(measured, component_sigmas(cm), to_blk)
        angle = float(np.linalg.norm(omega))
        resolved = "two-setting fit" in how and "not decisive" not in how and "weak" not in how
        in_force = np.allclose(block_settings, current, rtol=0, atol=1e-9)
        fresh = self._hidden_fresh and in_force
        if in_force:
            self._hidden_fresh = False
        if angle > self.acquire_rad:
            self._hidden = {}
            apply, what = omega, f"acquire: full correction of {angle:.3f} rad"
        else:
            hidden, parts = self._hidden_steps(cm, omega, resolved, fresh) if in_force else (np.zeros(3), [])
            if chi2_aligned < self.chi2_visible and not parts:
                return None
            self._hidden_fresh = bool(parts)
            apply = hidden
            if chi2_aligned >= self.chi2_visible:
                apply[1] = self.gain * omega[1]
                parts.insert(0, f"visible w_y {omega[1]:+.4f} rad (chi2 {chi2_aligned:.1f} > {self.chi2_visible:.1f})")
            what = "; ".join(parts)
        target = _su2(-apply) @ c_cur
        inv = self.calibration.settings_for(target, start=current)
        self._awaiting, self._waited = tuple(inv.settings), 0
        return Proposal(
            params=settings_params(inv.settings),
            reason=f"{what}; mirror branch {choice} by {how}; settings fidelity {inv.fidelity:.5f}",
            extra={"fit_fidelity": inv.fidelity, "mirror_branch": choice, "chi2_aligned": chi2_aligned},
        )


def _su2(rotvec: np.ndarray) -> np.ndarray:
    """SU(2) of a Bloch rotation vector (rad)."""
    return su2_from_rotation(Rotation.from_rotvec(np.asarray(rotvec, dtype=float)))
