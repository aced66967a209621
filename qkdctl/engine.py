"""The block loop: acquire -> process -> detect -> retune -> store.

Acquisition of block k+1 runs in a thread while block k is processed; the
queue between them is bounded (`queue_depth`), so acquisition waits when
processing falls behind (back-pressure).  Tuner proposals made after block k
take effect at the next acquisition that starts after them (with overlap,
block k+2); each block records the parameters that were in force for it.

Tuners may ask for probe measurements (`qkdctl.probe`): short blocks at trial
parameters, processed up to QBER estimation only, never keyed.  The bench is
behind one lock: the acquisition thread holds it for each acquisition, a probe
for its apply -> acquire -> restore, so a probe waits for the acquisition in
flight and the next acquisition waits for the probe; neither sees the other's
parameters.  Probes per block are capped by `probe_budget` (all tuners together).

Per block, keys are fsynced in Alice's and Bob's key stores before the block
row is committed to the run database; a crash in between leaves keys that
`reconcile_stores` drops at the next start.  A block that fails a security
check stores no key.  The run is aborted (status 'aborted', exit code 4) when
`max_consecutive_aborts` blocks in a row fail their security checks.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from qkdctl.blockreport import Alarm, BlockReport
from qkdctl.core.errors import ConfigError, QkdError
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.tags import GateConfig, recover_clock
from qkdctl.core.timing import find_arrival_peak
from qkdctl.hardware import Acquisition, Hardware, choice_probabilities, intensities
from qkdctl.pipeline import BlockOutcome, BlockSettings, process_block
from qkdctl.probe import ProbeSession, probe_report
from qkdctl.select.learner import SelectionLearner
from qkdctl.store.consistency import reconcile_stores
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB
from qkdctl.tune.base import Tuner

# detector(report, history) -> alarms; an 'abort' alarm discards the block's key.
Detector = Callable[[BlockReport, Sequence[BlockReport]], list[Alarm]]


class LocalProcessor:
    """Both roles in this process (the default): `process_block`, keys into both stores.

    A block processor gives `sides` (the key stores it writes, under out_dir/keys/),
    `process(acq, settings, rng, auth_key) -> BlockOutcome`, then for each block either
    `store(outcome, stores) -> key_id` (after the detectors passed it) or `discard(report)`.
    The two-process Bob of `qkdctl.roles` is the other one.
    """

    sides = ("alice", "bob")

    def __init__(self) -> None:
        self.qber_prior: float | None = None  # QBER_Z corrected in the last verified block

    def process(self, acq: Acquisition, settings: BlockSettings, rng: np.random.Generator,
                auth_key: bytes, selector=None, learn: bool = False) -> BlockOutcome:
        """The whole pipeline on Alice's record and Bob's tags (selector, learn: process_block's).

        Reconciliation is sized from the last verified block's corrected QBER_Z (as the
        two-process roles do); without one, the pipeline discloses a Z sample.
        """
        out = process_block(acq.block_id, acq.tags, acq.alice, settings, rng, qber_prior=self.qber_prior,
                            auth_key=auth_key, selector=selector, learn=learn)
        rep = out.report
        self.qber_prior = rep.qber_z if rep.verified and np.isfinite(rep.qber_z) else None
        return out

    def store(self, out: BlockOutcome, stores: list[KeyStore]) -> str:
        """Alice's key, then Bob's under the same id (both fsynced)."""
        key_id = stores[0].add(out.alice_key)
        stores[1].add(out.bob_key, key_id=key_id)
        return key_id

    def discard(self, report: BlockReport) -> None:
        """Nothing to tell anyone: the block's keys are dropped."""

    def probe(self, acq: Acquisition, settings: BlockSettings, rng: np.random.Generator) -> BlockReport:
        """A tuner's probe block, processed up to QBER estimation (no key; `qkdctl.probe`)."""
        return probe_report(acq.block_id, acq.tags, acq.alice, settings, rng)


@dataclass
class EngineOptions:
    """Loop settings. block_seconds: acquisition time per block (s).

    Until the first block makes key, the bench is still being aligned: aborted
    blocks then count against `startup_blocks`, not `max_consecutive_aborts`.
    probe_budget: probes all tuners together may take per block; max_probe_s: the
    longest probe acquisition (s), longer requests are cut to it.
    """

    block_seconds: float = 0.05
    queue_depth: int = 2
    max_consecutive_aborts: int = 5
    startup_blocks: int = 20
    history_length: int = 200
    probe_budget: int = 8
    max_probe_s: float = 0.01


@dataclass
class RunSummary:
    """What a run did; `as_dict()` is the `qkdctl run --json` object."""

    run_id: str
    out_dir: str
    seed: int
    status: str = "running"
    blocks: int = 0
    blocks_aborted: int = 0
    secret_bits: int = 0
    sifted_bits: int = 0
    acquired_s: float = 0.0
    qbers: list = field(default_factory=list)
    alarms: int = 0
    probes: int = 0
    abort_reason: str = ""

    def as_dict(self) -> dict:
        qb = [q for q in self.qbers if np.isfinite(q)]
        return {
            "run_id": self.run_id,
            "out_dir": self.out_dir,
            "seed": self.seed,
            "status": self.status,
            "blocks": self.blocks,
            "blocks_aborted": self.blocks_aborted,
            "secret_bits": self.secret_bits,
            "sifted_bits": self.sifted_bits,
            "mean_qber": float(np.mean(qb)) if qb else None,
            "secret_rate_bps": self.secret_bits / self.acquired_s if self.acquired_s else 0.0,
            "alarms": self.alarms,
            "probes": self.probes,
            "abort_reason": self.abort_reason,
        }


class Engine:
    """Runs key blocks on one bench and stores keys and reports in `out_dir`."""

    def __init__(
        self,
        hardware: Hardware,
        settings: BlockSettings,
        out_dir: str | os.PathLike,
        *,
        options: EngineOptions | None = None,
        tuners: Sequence[Tuner] = (),
        detectors: Sequence[Detector] = (),
        seed: int | None = None,
        config_text: str = "",
        auth_key: bytes | None = None,
        on_block: Callable[[BlockReport], None] | None = None,
        processor=None,
        learner: SelectionLearner | None = None,
    ) -> None:
        self.hw = hardware
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.options = options or EngineOptions()
        self.tuners = list(tuners)
        wanted = [f"{t.name}: {t.probe_budget}" for t in self.tuners if t.probe_budget]
        if sum(t.probe_budget for t in self.tuners) > self.options.probe_budget:
            raise ConfigError(f"tuners want {sum(t.probe_budget for t in self.tuners)} probes per block "
                              f"({', '.join(wanted)}); [tuner].probe_budget is {self.options.probe_budget}")
        self.detectors = list(detectors)
        self.seed = seed if seed is not None else secrets.randbits(63)
        self.rng = np.random.default_rng(self.seed)
        self.config_text = config_text
        # Pre-shared authentication key of the classical channel (HMAC: not consumed).
        self.auth_key = auth_key if auth_key is not None else secrets.token_bytes(64)
        self.on_block = on_block
        self.processor = processor if processor is not None else LocalProcessor()
        if learner is not None and not isinstance(self.processor, LocalProcessor):
            raise ConfigError("[select]: learned event selection needs both roles in this process")
        self.learner = learner  # event selector refitted on past verified blocks (qkdctl.select)
        self._stop = threading.Event()
        self._bench_lock = threading.Lock()  # one acquisition or probe at a time
        self.history: list[BlockReport] = []
        self._found_offset: float | None = None

    def stop(self) -> None:
        """Ask the loop to stop after the block in flight (signal-safe)."""
        self._stop.set()

    def _acquire_loop(self, q: queue.Queue, n_blocks: int | None, deadline: float | None) -> None:
        made = 0
        try:
            while not self._stop.is_set() and (n_blocks is None or made < n_blocks):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                t0 = time.perf_counter()
                with self._bench_lock:
                    acq = self.hw.acquire(self._block_seconds(self.hw.params()))
                item = (acq, time.perf_counter() - t0)
                while not self._stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                made += 1
        except BaseException as exc:  # handed to the processing thread
            q.put(exc)
            return
        q.put(None)

    def run(self, blocks: int | None = None, seconds: float | None = None) -> RunSummary:
        """Run until `blocks` blocks or `seconds` of wall time (or stop()); return the summary."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        db = RunDB(self.out_dir)
        stores = [KeyStore(self.out_dir / "keys" / side) for side in self.processor.sides]
        reconcile_stores(db, stores)
        run_id = uuid.uuid4().hex[:12]
        summary = RunSummary(run_id=run_id, out_dir=str(self.out_dir), seed=self.seed)
        db.start_run(run_id, self.config_text, self.seed)
        for tuner in self.tuners:
            tuner.start_run(db, run_id)
        q: queue.Queue = queue.Queue(maxsize=max(1, self.options.queue_depth))
        deadline = time.monotonic() + seconds if seconds is not None else None
        producer = threading.Thread(target=self._acquire_loop, args=(q, blocks, deadline),
                                    name="acquire", daemon=True)
        producer.start()
        consecutive = 0
        try:
            while True:
                item = q.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                acq, acquire_s = item
                report = self._one_block(acq, acquire_s, stores, db, run_id)
                summary.blocks += 1
                summary.acquired_s += report.duration_s + report.probe_seconds  # probes use the bench too
                summary.sifted_bits += report.sifted_bits_z
                summary.alarms += len(report.alarms)
                summary.probes += report.probes
                summary.qbers.append(report.qber_z)
                if report.status == "ok":
                    summary.secret_bits += report.key_bits
                    consecutive = 0
                else:
                    summary.blocks_aborted += 1
                    consecutive += 1
                if self.on_block is not None:
                    self.on_block(report)
                aligning = summary.secret_bits == 0
                limit = self.options.startup_blocks if aligning else self.options.max_consecutive_aborts
                if consecutive >= limit:
                    summary.status = "aborted"
                    summary.abort_reason = (
                        f"{consecutive} consecutive blocks failed security checks"
                        f"{' before any key' if aligning else ''}; last: {report.abort_reason}"
                    )
                    break
            if summary.status == "running":
                summary.status = "stopped" if self._stop.is_set() else "ok"
        except BaseException as exc:
            summary.status = "failed"
            summary.abort_reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._stop.set()
            producer.join(timeout=30)
            db.finish_run(run_id, summary.status, summary.as_dict())
            db.close()
        return summary

    def _one_block(self, acq: Acquisition, acquire_s: float, stores: list[KeyStore],
                   db: RunDB, run_id: str) -> BlockReport:
        settings = replace(self.settings, mu=intensities(acq.params, self.hw.mu_at_0db),
                           gate=self._gate(acq))
        choice = choice_probabilities(acq.params)  # the probabilities in force for this block
        if choice is not None:
            settings = replace(settings, p_mu=choice[1])
        learning = {"selector": self.learner.selector(), "learn": True} if self.learner else {}
        out = self.processor.process(acq, settings, self.rng, self.auth_key, **learning)
        rep = out.report
        rep.duration_s = self._block_seconds(acq.params)
        rep.params = dict(acq.params)
        rep.stage_seconds["acquire"] = acquire_s
        for det in self.detectors:
            rep.alarms.extend(det(rep, self.history))
        aborting = [a for a in rep.alarms if a.severity == "abort"]
        if aborting and rep.status == "ok":
            rep.status = "aborted"
            rep.abort_reason = f"alarm: {aborting[0].source}: {aborting[0].message}"
        if self.learner is not None:
            self._learn(rep, out, settings, bool(aborting))
        self.history.append(rep)
        del self.history[: -self.options.history_length]
        self._retune(rep)
        t0 = time.perf_counter()
        if rep.status == "ok" and out.bob_key is not None:
            rep.key_id = self.processor.store(out, stores)
        else:
            self.processor.discard(rep)
            rep.key_bits = 0
        db.add_block(run_id, rep)
        rep.stage_seconds["store"] = time.perf_counter() - t0
        return rep

    def _learn(self, rep: BlockReport, out: BlockOutcome, settings: BlockSettings, alarmed: bool) -> None:
        """Record what fitted this block's selector, then learn from the block (once verified,
        unless a detector aborted it); a refit applies from the next block on."""
        rep.selection = {**(rep.selection or {"selector": "none (every gated event)"}),
                         "fitted": self.learner.record()}
        if out.labelled is None or alarmed:
            return
        decoy = DecoySettings(settings.mu, settings.p_mu, settings.eps_sec, settings.eps_cor)
        if self.learner.observe(rep.block_id, out.labelled, decoy):
            rep.selection["refit"] = self.learner.record()

    def _block_seconds(self, params) -> float:
        """Block length (s) in force: the "block.seconds" parameter (set by a control
        tuner), else EngineOptions.block_seconds."""
        return float(params.get("block.seconds", self.options.block_seconds))

    def _gate(self, acq: Acquisition) -> GateConfig:
        """The gate in force for this block; on the first block without a configured
        offset, centre it on this block's arrival-time peak and keep it."""
        g = self.settings.gate
        width = acq.params.get("gate.width_ps", g.width_ps)
        offset = acq.params.get("gate.offset_ps")
        if offset is None:
            offset = self._found_offset
        if offset is None:
            s = self.settings
            clock = recover_clock(acq.tags, s.sync_channel, s.sync_divider, s.nominal_sync_period_ps)
            offset = find_arrival_peak(acq.tags, clock, list(g.roles)).offset_ps
            self._found_offset = offset
            with self._bench_lock:
                self.hw.apply({"gate.offset_ps": offset})
        return replace(g, offset_ps=float(offset), width_ps=float(width))

    def _probe_session(self) -> ProbeSession | None:
        """This block's probe callable (None when the processor cannot process probes)."""
        if not hasattr(self.processor, "probe"):
            return None
        g = self.settings.gate
        offset = self._found_offset if self._found_offset is not None else g.offset_ps
        defaults = {"gate.offset_ps": offset, "gate.width_ps": g.width_ps}
        return ProbeSession(self.hw, self._bench_lock, self.options.probe_budget, self.options.max_probe_s,
                            self._process_probe, defaults)

    def _process_probe(self, acq: Acquisition) -> BlockReport:
        settings = replace(self.settings, mu=intensities(acq.params, self.hw.mu_at_0db), gate=self._gate(acq))
        return self.processor.probe(acq, settings, self.rng)

    def _retune(self, rep: BlockReport) -> None:
        probe = self._probe_session()
        try:
            self._propose_all(rep, probe)
        finally:
            if probe is not None:
                rep.probes, rep.probe_seconds = probe.used, probe.seconds
                rep.stage_seconds["probe"] = probe.wall_s

    def _propose_all(self, rep: BlockReport, probe: ProbeSession | None) -> None:
        for tuner in self.tuners:
            try:
                prop = tuner.propose(self.history, self.hw.params(), probe)
            except QkdError as exc:
                rep.alarms.append(Alarm(f"tuner:{tuner.name}", "warn", f"tuner failed: {exc}"))
                continue
            if prop is None or not prop.params:
                continue
            with self._bench_lock:
                self.hw.apply(prop.params)
            earlier = rep.tuner
            rep.tuner = {"name": tuner.name, "proposal": dict(prop.params), "reason": prop.reason,
                         "probes_used": prop.probes_used}
            if earlier:  # several tuners acted on this block: one combined decision record
                rep.tuner = {**earlier, "name": f"{earlier['name']}+{tuner.name}",
                             "proposal": {**earlier["proposal"], **rep.tuner["proposal"]},
                             "reason": f"{earlier['reason']}; {prop.reason}",
                             "probes_used": earlier["probes_used"] + prop.probes_used}
            if "method" in prop.extra:  # reconciliation method: from the next processed block on
                self.settings = replace(self.settings, method=str(prop.extra["method"]))
                rep.tuner["method"] = self.settings.method
