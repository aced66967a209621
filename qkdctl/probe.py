"""Probe measurements for tuners: a short block at trial parameters, measured, never keyed.

A tuner may ask the engine for a probe (`qkdctl.tune.base.Probe`): the engine
applies the trial parameters through the bench, acquires a short block, puts
the parameters it replaced back, and processes the block up to QBER estimation
only (gate, align, sift, estimate).  Probe data is sacrificed: both bases are
compared in full (QBER_Z and QBER_X exact on the probe), nothing is reconciled
or amplified, and no key leaves this module.  `ProbeSession` is the callable a
tuner gets for one block; it counts probes against the block's budget.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.core.constants import BASIS_Z
from qkdctl.core.estimate import estimate
from qkdctl.core.errors import QkdInputError
from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.sift import pulses_sent, sift
from qkdctl.core.tags import TagBlock, gate, recover_clock
from qkdctl.hardware import Acquisition, Hardware
from qkdctl.pipeline import BlockSettings, align_record, report_estimate, report_sift
from qkdctl.tune.base import ProbeBudgetError

#: parameters a probe may not change (they are not a measurement setting).
NOT_PROBED = frozenset({"block.seconds"})


def probe_report(block_id: int, tags: TagBlock, alice: AliceRecord, settings: BlockSettings,
                 rng: np.random.Generator) -> BlockReport:
    """QBER and gains of a probe block (status 'probe'; key_bits 0; never raises on high QBER).

    Gate, align Alice's record, sift and disclose both bases in full.  A probe whose
    QBER is above the abort threshold keeps status 'probe' and names it in abort_reason.
    """
    rep = BlockReport(block_id=block_id, status="probe", n_tags=len(tags))
    t0 = time.perf_counter()
    clock = recover_clock(tags, settings.sync_channel, settings.sync_divider, settings.nominal_sync_period_ps)
    gated = gate(tags, clock, settings.gate)
    alice, alignment = align_record(alice, tags, clock, gated.slot, settings.mu)
    sifted = sift(gated, alice, rng, pulses=pulses_sent(alice))
    report_sift(rep, tags, clock, gated, sifted, alignment, click_matrix(gated, alice).tolist())
    est = estimate(sifted, rng, disclose_x=True, sample_fraction=1.0)
    rep.abort_reason = report_estimate(rep, est, settings) or ""
    rep.qber_z = float(est.qber_basis[BASIS_Z])
    rep.qber_by_intensity["z"] = est.qber[BASIS_Z].tolist()
    rep.stage_seconds = {"probe_process": time.perf_counter() - t0}
    return rep


class ProbeSession:
    """The probe callable of one block: `session(params, duration_s) -> BlockReport`.

    At most `budget` probes (over all tuners of the block; one more raises
    ProbeBudgetError), each of min(duration_s, max_probe_s) seconds.  Under `lock`
    (the one the acquisition thread holds while it acquires, so the two never
    interleave) it applies `params`, acquires, then puts back the values those
    parameters had before (`defaults` gives the software parameters the bench has
    not been told yet, e.g. gate.width_ps).  `process(acq)` makes the report.
    """

    def __init__(self, hw: Hardware, lock: threading.Lock, budget: int, max_probe_s: float,
                 process: Callable[[Acquisition], BlockReport], defaults: Mapping[str, float]) -> None:
        self.hw, self.lock, self.budget, self.max_probe_s = hw, lock, int(budget), float(max_probe_s)
        self.process, self.defaults = process, dict(defaults)
        self.used = 0
        self.seconds = 0.0  # bench time acquired by the probes (s)
        self.wall_s = 0.0  # wall time the probes took, waiting for the bench included (s)

    def __call__(self, params: Mapping[str, float], duration_s: float) -> BlockReport:
        """Measure a probe block with `params` in force for `duration_s` seconds (capped)."""
        if self.used >= self.budget:
            raise ProbeBudgetError(f"probe refused: the budget of {self.budget} probes per block is spent")
        if not (isinstance(duration_s, (int, float)) and np.isfinite(duration_s) and duration_s > 0):
            raise QkdInputError(f"probe duration_s must be a finite number > 0 s, got {duration_s!r}")
        fixed = sorted(NOT_PROBED.intersection(params))
        if fixed:
            raise QkdInputError(f"a probe cannot change {fixed}")
        seconds = min(float(duration_s), self.max_probe_s)
        t0 = time.perf_counter()
        with self.lock:
            before = {**self.defaults, **self.hw.params()}
            unknown = sorted(set(params) - set(before))
            if unknown:
                raise QkdInputError(f"a probe cannot set {unknown}: not operating parameters of this bench")
            try:
                self.hw.apply(params)
                acq = self.hw.acquire(seconds)
            finally:
                self.hw.apply({k: before[k] for k in params})
        self.used += 1
        self.seconds += seconds
        rep = self.process(acq)
        rep.duration_s = seconds
        rep.params = dict(acq.params)
        self.wall_s += time.perf_counter() - t0
        return rep
