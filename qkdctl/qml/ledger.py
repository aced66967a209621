"""Job ledger: every quantum job a tuner submits, in the run database's qml_jobs table.

`submit` hands PUBs to a V2 sampler and returns at once with the job id (the
primitives run local jobs in a worker thread, remote ones on IBM's side).
`status` polls the job and, when it has finished, decodes the counts and stores
them in the row, so `result` works after a restart without the job object.  A
local (aer/fake) job whose process died before it finished cannot be recovered:
its row is marked "lost".  An ibm job is looked up again by id through the
backend (QiskitRuntimeService.job) after a restart.

Figures per job: shots, circuits (parameter sets), submitted/finished times,
latency_s (submission to result seen, s), queue_s (time queued before running, s,
from the runtime's job metrics; NULL for local jobs, which start at once).

The qml_jobs table is created by qkdctl.store.rundb; the ledger adds its columns
(shots, circuits, tag, finished_utc, latency_s, queue_s, error) when missing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.store.rundb import SCHEMA, RunDB

FINAL = ("done", "error", "cancelled", "lost")
_EXTRA_COLUMNS = {"shots": "INTEGER", "circuits": "INTEGER", "tag": "TEXT", "finished_utc": "REAL",
                  "latency_s": "REAL", "queue_s": "REAL", "error": "TEXT"}


@dataclass(frozen=True)
class JobHandle:
    """A submitted job: its id, the backend spec it went to, shots and circuits."""

    job_id: str
    backend: str
    shots: int
    circuits: int


def _status_name(status: object) -> str:
    """Normalise JobStatus enums and runtime status strings to lower-case names."""
    name = getattr(status, "name", status)
    name = str(name).lower()
    return {"initializing": "queued", "validating": "queued"}.get(name, name)


def decode_sampler_result(result) -> list[dict[str, list[dict[str, int]]]]:
    """Counts of a sampler PrimitiveResult: per PUB, per register, one counts dict per parameter set."""
    out = []
    for pub in result:
        regs = {}
        for reg_name in pub.data:
            bits = pub.data[reg_name]
            n = int(bits.size)
            flat = bits.reshape(n) if bits.ndim != 1 else bits
            regs[reg_name] = [dict(flat.get_counts(i)) for i in range(n)]
        out.append(regs)
    return out


def _parameter_sets(pub) -> int:
    """Circuits a PUB stands for: one per row of its parameter values (1 without)."""
    if not isinstance(pub, tuple) or len(pub) < 2 or pub[1] is None:
        return 1
    shape = np.shape(pub[1])
    return int(np.prod(shape[:-1])) if len(shape) >= 2 else 1


def _queue_seconds(job) -> float | None:
    """Time queued before running, from runtime job metrics (None when not available)."""
    metrics = getattr(job, "metrics", None)
    if metrics is None:
        return None
    try:
        stamps = metrics().get("timestamps", {})
        from datetime import datetime

        created, running = stamps.get("created"), stamps.get("running")
        if not created or not running:
            return None
        return (datetime.fromisoformat(running.replace("Z", "+00:00"))
                - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    except Exception:  # metrics are informative only; a malformed record leaves queue_s NULL
        return None


class JobLedger:
    """Submit, poll, fetch and cancel quantum jobs, recorded in a qml_jobs table.

    conn: SQLite connection (the run database, or an in-memory one); run_id: run the
    jobs belong to; backend: the QuantumBackend jobs go to (may be None for a ledger
    only read, e.g. by the CLI on a local run).  Thread-safe (one lock).
    """

    def __init__(self, conn: sqlite3.Connection, run_id: str = "", backend=None) -> None:
        self.conn = conn
        self.run_id = run_id
        self.backend = backend
        self._lock = threading.RLock()
        self._live: dict[str, object] = {}
        with self._lock, self.conn:
            self.conn.executescript(SCHEMA)
            have = {row[1] for row in self.conn.execute("PRAGMA table_info(qml_jobs)")}
            for col, typ in _EXTRA_COLUMNS.items():
                if col not in have:
                    self.conn.execute(f"ALTER TABLE qml_jobs ADD COLUMN {col} {typ}")

    @classmethod
    def open(cls, run_dir: str | Path, run_id: str = "", backend=None) -> "JobLedger":
        """The ledger in `run_dir`'s run database (QkdInputError if there is none)."""
        path = Path(run_dir) / RunDB.FILENAME
        if not path.is_file():
            raise QkdInputError(f"{run_dir}: no run database ({RunDB.FILENAME}) here")
        conn = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        return cls(conn, run_id, backend)

    @classmethod
    def in_memory(cls, run_id: str = "", backend=None) -> "JobLedger":
        """A ledger kept in memory (benchmarks, tests without a run directory)."""
        return cls(sqlite3.connect(":memory:", check_same_thread=False), run_id, backend)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def record_decision(self, block_id: int, tuner: str, reason: str) -> None:
        """A tuner decision that is not a proposal (waiting, error, timeout) in tuner_decisions."""
        with self._lock, self.conn:
            self.conn.execute("INSERT INTO tuner_decisions VALUES (?,?,?,?,?)",
                              (self.run_id, int(block_id), tuner, "{}", reason))

    def submit(self, sampler, pubs: Sequence, *, shots: int, tag: str = "", payload: dict | None = None) -> JobHandle:
        """Run `pubs` on `sampler` without waiting; record and return the job handle.

        A submission error (bad circuit, backend refused) is recorded as a row with
        status "error" and re-raised as QkdInputError.
        """
        if shots < 1:
            raise QkdInputError(f"shots must be >= 1, got {shots}")
        pubs = list(pubs)
        circuits = sum(_parameter_sets(p) for p in pubs)
        spec = self.backend.spec if self.backend is not None else "unknown"
        now = time.time()
        try:
            job = sampler.run(pubs, shots=int(shots))
            job_id = str(job.job_id())
            error = None
        except Exception as exc:  # the backend's own error types vary
            job, job_id, error = None, f"failed-{uuid.uuid4().hex[:12]}", f"{type(exc).__name__}: {exc}"
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT INTO qml_jobs (job_id, run_id, backend, status, submitted_utc, updated_utc, payload, "
                "result, shots, circuits, tag, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, self.run_id, spec, "error" if error else "submitted", now, now,
                 json.dumps(payload or {}), None, int(shots), circuits, tag, error))
            if job is not None:
                self._live[job_id] = job
        if error:
            raise QkdInputError(f"{spec}: job submission failed: {error}")
        return JobHandle(job_id, spec, int(shots), circuits)

    def row(self, job_id: str) -> dict:
        """The ledger row of `job_id` (QkdInputError if unknown)."""
        with self._lock:
            cur = self.conn.execute("SELECT * FROM qml_jobs WHERE job_id=?", (job_id,))
            row = cur.fetchone()
            cols = [c[0] for c in cur.description]
        if row is None:
            raise QkdInputError(f"no quantum job {job_id!r} in this ledger")
        return dict(zip(cols, row))

    def jobs(self) -> list[dict]:
        """All rows (without results), oldest first."""
        with self._lock:
            cur = self.conn.execute("SELECT * FROM qml_jobs ORDER BY submitted_utc")
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for r in rows:
            r.pop("result", None)
        return rows

    def _job(self, job_id: str, row: dict):
        """The live job object, re-attached by id for remote jobs after a restart."""
        if job_id in self._live:
            return self._live[job_id]
        if self.backend is not None and not self.backend.is_local and self.backend.spec == row["backend"]:
            job = self.backend.retrieve(job_id)
            self._live[job_id] = job
            return job
        return None

    def _update(self, job_id: str, **cols) -> None:
        cols["updated_utc"] = time.time()
        sets = ", ".join(f"{k}=?" for k in cols)
        with self._lock, self.conn:
            self.conn.execute(f"UPDATE qml_jobs SET {sets} WHERE job_id=?", (*cols.values(), job_id))

    def status(self, job_id: str) -> str:
        """Poll `job_id`: "submitted"/"queued"/"running"/"done"/"error"/"cancelled"/"lost".

        On completion the counts are stored in the row; a local job not known to this
        process (it died with an earlier one) becomes "lost".
        """
        row = self.row(job_id)
        if row["status"] in FINAL:
            return row["status"]
        job = self._job(job_id, row)
        if job is None:
            if row["backend"].startswith("ibm:"):
                return row["status"]  # a remote job, but no ibm backend opened to ask
            self._update(job_id, status="lost", error="local job did not survive its process")
            return "lost"
        try:
            state = _status_name(job.status())
        except Exception as exc:  # runtime API errors while polling
            self._update(job_id, status="error", error=f"status poll failed: {type(exc).__name__}: {exc}")
            self._live.pop(job_id, None)
            return "error"
        if state == "done":
            try:
                counts = decode_sampler_result(job.result())
            except Exception as exc:  # the job's own failure surfaces here
                self._update(job_id, status="error", error=f"{type(exc).__name__}: {exc}")
                self._live.pop(job_id, None)
                return "error"
            now = time.time()
            self._update(job_id, status="done", result=json.dumps(counts), finished_utc=now,
                         latency_s=now - row["submitted_utc"], queue_s=_queue_seconds(job))
            self._live.pop(job_id, None)
            return "done"
        if state in ("error", "cancelled"):
            err = None
            if state == "error":
                err = str(getattr(job, "error_message", lambda: "job failed")())
            self._update(job_id, status=state, error=err, finished_utc=time.time())
            self._live.pop(job_id, None)
            return state
        if state != row["status"]:
            self._update(job_id, status=state)
        return state

    def wait(self, job_id: str, timeout_s: float, poll_s: float | None = None) -> str:
        """Poll until `job_id` is final or `timeout_s` passed; return the last status.

        poll_s: interval between polls (default 5 ms for local jobs, 2 s for remote ones,
        so an IBM job is not polled hundreds of times a second).
        """
        if poll_s is None:
            poll_s = 0.005 if self.backend is None or self.backend.is_local else 2.0
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.status(job_id)
            if state in FINAL or time.monotonic() >= deadline:
                return state
            time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))

    def result(self, job_id: str) -> list[dict[str, list[dict[str, int]]]]:
        """Stored counts of a finished job (polls first); QkdInputError if it has none."""
        state = self.status(job_id)
        if state != "done":
            row = self.row(job_id)
            why = f": {row['error']}" if row.get("error") else ""
            raise QkdInputError(f"quantum job {job_id} has no result (status {state}{why})")
        return json.loads(self.row(job_id)["result"])

    def cancel(self, job_id: str) -> str:
        """Cancel `job_id` if it is still pending; return its status afterwards."""
        state = self.status(job_id)
        if state in FINAL:
            return state
        job = self._job(job_id, self.row(job_id))
        if job is not None:
            try:
                job.cancel()
            except Exception as exc:  # runtime refuses to cancel a job that just finished
                self._update(job_id, error=f"cancel failed: {type(exc).__name__}: {exc}")
                return self.status(job_id)
        self._live.pop(job_id, None)
        self._update(job_id, status="cancelled", finished_utc=time.time())
        return "cancelled"
