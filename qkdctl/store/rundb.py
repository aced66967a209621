"""Run database: one SQLite file (WAL mode) per output directory.

Tables: runs, blocks (every BlockReport figure, main ones as columns and the
whole report as JSON), params (parameters in force per block), alarms,
tuner_decisions, qml_jobs.  A block row is committed in one transaction after
its key is fsynced in the key store, so the two always agree on key ids (see
`qkdctl.store.consistency`).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

from qkdctl.blockreport import BlockReport

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_utc REAL, finished_utc REAL,
    config TEXT, seed INTEGER, status TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS blocks (
    run_id TEXT, block_id INTEGER, status TEXT, abort_reason TEXT,
    key_id TEXT, key_bits INTEGER, qber_z REAL, qber_x REAL,
    sifted_bits_z INTEGER, sifted_bits_x INTEGER, method TEXT,
    leaked_bits INTEGER, ec_efficiency REAL, duration_s REAL, report TEXT,
    PRIMARY KEY (run_id, block_id));
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT, block_id INTEGER, name TEXT, value REAL);
CREATE TABLE IF NOT EXISTS alarms (
    run_id TEXT, block_id INTEGER, source TEXT, severity TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS tuner_decisions (
    run_id TEXT, block_id INTEGER, tuner TEXT, proposal TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS qml_jobs (
    job_id TEXT PRIMARY KEY, run_id TEXT, backend TEXT, status TEXT,
    submitted_utc REAL, updated_utc REAL, payload TEXT, result TEXT);
"""


def _json_safe(value):
    """Replace NaN/inf floats by None so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def dumps(value) -> str:
    """Standard JSON (NaN -> null) of plain values."""
    return json.dumps(_json_safe(value))


class RunDB:
    """The SQLite run database of one output directory."""

    FILENAME = "run.sqlite"

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "RunDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start_run(self, run_id: str, config_text: str, seed: int) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, 'running', NULL)",
                (run_id, time.time(), config_text, seed),
            )

    def finish_run(self, run_id: str, status: str, summary: dict) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET finished_utc=?, status=?, summary=? WHERE run_id=?",
                (time.time(), status, dumps(summary), run_id),
            )

    def add_block(self, run_id: str, report: BlockReport) -> None:
        """Insert one block with its params, alarms and tuner decision, atomically."""
        r = report
        with self.conn:
            self.conn.execute(
                "INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, r.block_id, r.status, r.abort_reason, r.key_id or None,
                 r.key_bits, _json_safe(r.qber_z), _json_safe(r.qber_x),
                 r.sifted_bits_z, r.sifted_bits_x, r.method, r.leaked_bits,
                 _json_safe(r.ec_efficiency), r.duration_s, dumps(r.to_dict())),
            )
            self.conn.executemany(
                "INSERT INTO params VALUES (?,?,?,?)",
                [(run_id, r.block_id, k, float(v)) for k, v in r.params.items()],
            )
            self.conn.executemany(
                "INSERT INTO alarms VALUES (?,?,?,?,?)",
                [(run_id, r.block_id, a.source, a.severity, a.message) for a in r.alarms],
            )
            if r.tuner:
                self.conn.execute(
                    "INSERT INTO tuner_decisions VALUES (?,?,?,?,?)",
                    (run_id, r.block_id, r.tuner.get("name", ""),
                     dumps(r.tuner.get("proposal", {})), r.tuner.get("reason", "")),
                )

    def blocks(self, run_id: str | None = None) -> list[dict]:
        """Block rows (as dicts, report JSON decoded) in block order."""
        cur = self.conn.execute(
            "SELECT * FROM blocks" + (" WHERE run_id=?" if run_id else "") +
            " ORDER BY run_id, block_id", (run_id,) if run_id else (),
        )
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, row)) for row in cur.fetchall()]
        for row in rows:
            row["report"] = json.loads(row["report"])
        return rows

    def runs(self) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY started_utc")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def key_ids(self) -> set[str]:
        """Every key id a block row names."""
        cur = self.conn.execute("SELECT key_id FROM blocks WHERE key_id IS NOT NULL")
        return {row[0] for row in cur.fetchall()}
