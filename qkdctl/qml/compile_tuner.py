"""QML polarization tuner: learn the channel from click data, compile its inverse on a quantum backend.

Per block (never blocking the block loop):
1. a training is in flight -> poll it: still running -> keep the parameters
   (None) and record "waiting"; failed or past `timeout_s` -> cancel, record,
   keep the parameters; finished -> propose the controller settings realising
   V(theta) C_block (= the fiber's inverse) through `calibration.settings_for`.
2. otherwise learn the received rotation T = C F from the newest block's click
   matrix (qkdctl.tune.polarization; mirror branch chosen by consistency with the
   previous block taken at other settings, else by continuity), and when the block
   is statistically inconsistent with a compensated link (binomial chi^2 of the
   four contrasts against the identity, qkdctl.tune.polarization, above the
   (1 - significance) quantile of chi^2(3)) and the QBER caused by rotation is
   above the deadband, start a CompileTask
   (qkdctl.qml.compiler) on the injected backend.  Blocks taken before a
   proposal took effect are skipped (at most `max_wait_blocks` of them: a
   controller that clips the settings never reports them exactly).

Decisions that are not proposals (waiting, errors, timeouts, training started)
are kept in `decisions` and, inside a run, written to the run database's
tuner_decisions table; every job is in the qml_jobs ledger.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import chi2 as chi2_dist

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.qml.compiler import CompileSettings, CompileTask, ansatz_unitary
from qkdctl.qml.ledger import JobLedger
from qkdctl.tune.base import Probe, Proposal, Tuner
from qkdctl.tune.polarization import (
    ControllerCalibration,
    chi2_given_rotation,
    component_sigmas,
    measured_components,
    received_rotation_candidates,
    su2_fidelity,
    visibility,
)


def _settings(params: Mapping[str, float], n: int) -> tuple[float, ...] | None:
    keys = [f"pol.{i}" for i in range(1, n + 1)]
    if not params or any(k not in params for k in keys):
        return None
    return tuple(float(params[k]) for k in keys)


class ChannelLearner:
    """Fiber rotation F from click matrices: F = C^dagger T with T from the BB84 statistics.

    The mirror ambiguity (docs/qml.md) is settled by the previous block taken at
    other controller settings (its fiber candidates must agree with the true
    branch); without one, the branch nearest the last estimate is kept (branch 0 at
    the start).
    """

    def __init__(self, calibration: ControllerCalibration) -> None:
        self.calibration = calibration
        self._ref: tuple[tuple[float, ...], tuple[np.ndarray, np.ndarray]] | None = None
        self._last: tuple[tuple[float, ...], tuple[np.ndarray, np.ndarray]] | None = None
        self.fiber: np.ndarray | None = None

    def update(self, click_matrix: object, settings: Sequence[float]) -> tuple[np.ndarray, str]:
        """(fiber rotation, how the mirror branch was chosen) for a block taken at `settings`."""
        c = self.calibration.rotation(settings)
        cands = tuple(np.conj(c).T @ t for t in received_rotation_candidates(click_matrix))
        if self._last is not None and not np.allclose(self._last[0], settings, rtol=0, atol=1e-9):
            self._ref = self._last
        self._last = (tuple(settings), cands)
        if self._ref is not None:
            score = [max(su2_fidelity(f, g) for g in self._ref[1]) for f in cands]
            k, how = int(np.argmax(score)), "consistency with the block at other settings"
        elif self.fiber is not None:
            k, how = int(np.argmax([su2_fidelity(f, self.fiber) for f in cands])), "continuity"
        else:
            k, how = 0, "guess (branch 0)"
        self.fiber = cands[k]
        return self.fiber, how


class QmlCompileTuner(Tuner):
    """Variational compensation compiled on a quantum backend (aer, fake:<device>, ibm:<name>).

    backend: a qkdctl.qml.backends.QuantumBackend; settings: optimizer variant and
    budget; rng: SPSA perturbations; ledger: job ledger (default in memory; inside
    a run the engine's start_run moves it into the run database); significance:
    false-alarm probability of the "link is compensated" test; qber_threshold,
    deadband_fraction, min_clicks: as the tomographic tuner; timeout_s: longest
    training (s) before it is cancelled and the parameters are kept; max_wait_blocks:
    blocks skipped at most while waiting for a proposal to take effect.
    """

    name = "qml-compile"

    def __init__(self, calibration: ControllerCalibration, backend, settings: CompileSettings,
                 rng: np.random.Generator, *, ledger: JobLedger | None = None, significance: float = 1e-3,
                 qber_threshold: float = 0.11, deadband_fraction: float = 0.02, min_clicks: int = 200, timeout_s: float = 120.0,
                 max_wait_blocks: int = 3) -> None:
        if calibration is None:
            raise QkdInputError("qml-compile tuner needs the polarization controller's calibration")
        if backend is None:
            raise QkdInputError("qml-compile tuner needs a quantum backend")
        if not 0.0 < significance < 0.5:
            raise QkdInputError(f"significance must lie in (0, 0.5), got {significance}")
        if not 0.0 < qber_threshold < 0.5:
            raise QkdInputError(f"qber_threshold must lie in (0, 0.5), got {qber_threshold}")
        if not 0.0 <= deadband_fraction < 1.0:
            raise QkdInputError(f"deadband_fraction must lie in [0, 1), got {deadband_fraction}")
        if min_clicks < 1 or not timeout_s > 0:
            raise QkdInputError(f"min_clicks must be >= 1 and timeout_s > 0, got {min_clicks}, {timeout_s}")
        self.calibration = calibration
        self.backend = backend
        self.settings = settings
        self.name = "qml-compile-pshift" if settings.method == "pshift" else "qml-compile"
        self.rng = rng
        self.ledger = ledger if ledger is not None else JobLedger.in_memory(backend=backend)
        self.deadband_qber = deadband_fraction * qber_threshold
        self.chi2_limit = float(chi2_dist.isf(significance, 3))
        self.min_clicks = int(min_clicks)
        self.timeout_s = float(timeout_s)
        self.max_wait_blocks = int(max_wait_blocks)
        self.learner = ChannelLearner(calibration)
        self.decisions: list[dict] = []
        self._task: CompileTask | None = None
        self._task_settings: tuple[float, ...] | None = None
        self._task_block = -1
        self._awaiting: tuple[tuple[float, ...], int] | None = None  # proposed settings, blocks left to wait

    def start_run(self, db, run_id: str) -> None:
        """Keep the job ledger and decisions in the run database `db` (a RunDB) from now on."""
        self.ledger = JobLedger.open(db.path.parent, run_id, self.backend)

    def _note(self, block_id: int, action: str, reason: str) -> None:
        self.decisions.append({"block_id": block_id, "action": action, "reason": reason})
        self.ledger.record_decision(block_id, self.name, f"{action}: {reason}")

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """Poll the training in flight, or learn the channel and start one; never waits for a job."""
        if not history:
            return None
        block_id = history[-1].block_id
        n = self.calibration.n_settings
        current = _settings(params, n)
        if current is None:
            raise QkdInputError(f"operating parameters lack polarization settings pol.1..pol.{n}")
        if self._task is not None:
            return self._poll(block_id, current)
        rep = history[-1]
        cm = rep.counts.get("click_matrix") if rep.counts else None
        block_settings = _settings(rep.params, n) or current
        if self._awaiting is not None:
            proposed, left = self._awaiting
            if np.allclose(block_settings, proposed, rtol=0, atol=1e-6) or left <= 0:
                self._awaiting = None
            else:
                self._awaiting = (proposed, left - 1)
                return None  # the proposal has not reached a block yet
        if cm is None:
            return None
        xz_h, xz_d, min_clicks = measured_components(cm)
        if min_clicks < self.min_clicks:
            return None
        fiber, how = self.learner.update(cm, block_settings)
        vis = visibility(cm)
        e_rot = max(0.5 * (1.0 - xz_h[1] / vis), 0.5 * (1.0 - xz_d[0] / vis))
        chi2 = chi2_given_rotation(np.concatenate([xz_h, xz_d]), component_sigmas(cm), np.eye(2))
        if e_rot < self.deadband_qber or chi2 < self.chi2_limit:
            return None
        total = self.calibration.rotation(block_settings) @ fiber
        self._task = CompileTask(self.backend, self.ledger, total, self.settings, self.rng,
                                 tag=f"{self.name}/block{block_id}").start()
        self._task_settings = block_settings
        self._task_block = block_id
        self._note(block_id, "train", f"QBER from rotation {e_rot:.4f} above deadband {self.deadband_qber:.4f}, "
                                      f"chi2 vs compensated {chi2:.1f} > {self.chi2_limit:.1f}; "
                                      f"mirror by {how}; {self.settings.method} on {self.backend.spec}")
        return None

    def _poll(self, block_id: int, current: tuple[float, ...]) -> Proposal | None:
        task = self._task
        elapsed = time.monotonic() - task.started
        if not task.done():
            if elapsed > self.timeout_s:
                task.cancel()
                self._task = None
                self._note(block_id, "timeout", f"training from block {self._task_block} cancelled after "
                                                f"{elapsed:.1f} s; parameters kept")
                return None
            self._note(block_id, "wait", f"training from block {self._task_block} running "
                                         f"({len(task.result.jobs)} jobs, {elapsed:.2f} s); parameters kept")
            return None
        self._task = None
        res = task.result
        if res.error:
            self._note(block_id, "error", f"training from block {self._task_block} failed: {res.error}; "
                                          "parameters kept")
            return None
        target = ansatz_unitary(res.theta) @ self.calibration.rotation(self._task_settings)
        inv = self.calibration.settings_for(target, start=current)
        self._awaiting = (tuple(float(v) for v in inv.settings), self.max_wait_blocks)
        return Proposal(
            params={f"pol.{i}": float(v) for i, v in enumerate(inv.settings, start=1)},
            reason=(f"compiled inverse ({self.settings.method} on {self.backend.spec}, {res.iterations} "
                    f"iterations, measured cost {res.cost:.4f}, {len(res.jobs)} jobs) of the channel of "
                    f"block {self._task_block}; settings fidelity {inv.fidelity:.5f}"),
            extra={"shots": res.shots, "jobs": list(res.jobs), "cost": res.cost, "theta": res.theta.tolist(),
                   "fit_fidelity": inv.fidelity},
        )
