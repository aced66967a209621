"""The HTML run report (`qkdctl report RUN_DIR`): one self-contained page per run.

Everything is read from the run database of RUN_DIR (`qkdctl.store.rundb`):
the run row (summary, seed, config), the block rows, the parameters in force,
alarms and tuner decisions.  Figures are PNGs embedded as data URIs.  No key
bits are read: key ids and lengths only.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import sqlite3
import tomllib
from dataclasses import dataclass
from pathlib import Path

from qkdctl.core.errors import QkdInputError
from qkdctl.report import figures
from qkdctl.store.rundb import RunDB

REPORT_NAME = "report.html"


@dataclass
class RunData:
    """One run as the report sees it (rows of the run database)."""

    run: dict
    blocks: list[dict]
    params: dict[str, list[float]]
    alarms: list[dict]
    tuner_decisions: list[dict]


def _rows(db: RunDB, sql: str, args: tuple) -> list[dict]:
    cur = db.conn.execute(sql, args)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def load_run(run_dir: str | os.PathLike, run_id: str | None = None) -> RunData:
    """Read one run (default: the latest started) of RUN_DIR's run database."""
    path = Path(run_dir) / RunDB.FILENAME
    if not path.is_file():
        raise QkdInputError(f"{run_dir}: no run database ({RunDB.FILENAME}) in this directory")
    try:
        with RunDB(run_dir) as db:
            runs = db.runs()
            if not runs:
                raise QkdInputError(f"{path}: the run database holds no run")
            if run_id is None:
                run = runs[-1]
            else:
                match = [r for r in runs if r["run_id"] == run_id]
                if not match:
                    raise QkdInputError(f"{path}: no run {run_id!r}; runs: {[r['run_id'] for r in runs]}")
                run = match[0]
            rid = run["run_id"]
            blocks = db.blocks(rid)
            prows = _rows(db, "SELECT block_id, name, value FROM params WHERE run_id=?", (rid,))
            alarms = _rows(db, "SELECT block_id, source, severity, message FROM alarms WHERE run_id=? "
                               "ORDER BY block_id", (rid,))
            tuner = _rows(db, "SELECT block_id, tuner, proposal, reason FROM tuner_decisions WHERE run_id=? "
                              "ORDER BY block_id", (rid,))
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise QkdInputError(f"{path}: not a readable run database ({exc})") from None
    index = {b["block_id"]: i for i, b in enumerate(blocks)}
    params: dict[str, list[float]] = {}
    for row in prows:
        if row["block_id"] in index:
            params.setdefault(row["name"], [math.nan] * len(blocks))[index[row["block_id"]]] = row["value"]
    return RunData(run, blocks, params, alarms, tuner)


def _threshold(config_text: str | None) -> float | None:
    """[protocol].qber_abort_threshold of the stored config, if it parses."""
    try:
        proto = tomllib.loads(config_text or "").get("protocol", {})
    except tomllib.TOMLDecodeError:
        return None
    value = proto.get("qber_abort_threshold", 0.11 if proto else None)
    return float(value) if isinstance(value, (int, float)) else None


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def _utc(ts: float | None) -> str:
    if ts is None:
        return "n/a"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


_CSS = """body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:90%}td,th{border:1px solid #bbb;padding:2px 6px;text-align:left}
th{background:#eee}img{max-width:100%;display:block;margin:.5em 0}h2{border-bottom:1px solid #ccc}"""


def render_html(data: RunData) -> str:
    """The report page of one run (self-contained HTML)."""
    run, blocks = data.run, data.blocks
    summary = json.loads(run["summary"]) if run["summary"] else {}
    times = figures.bench_time_s(blocks)
    at = {b["block_id"]: float(times[i]) for i, b in enumerate(blocks)}
    ok = [b for b in blocks if b["status"] == "ok"]
    total_s = float(times[-1]) if len(blocks) else 0.0
    secret = sum(b["key_bits"] or 0 for b in ok)
    sifted = sum(b["sifted_bits_z"] or 0 for b in blocks)
    qz = [b["qber_z"] for b in blocks if b["qber_z"] is not None]
    probes = {b["block_id"]: b["report"].get("probes", 0) for b in blocks}  # absent in older run databases
    probe_s = sum(b["report"].get("probe_seconds", 0.0) for b in blocks)
    facts = [
        ["run id", run["run_id"]], ["status", run["status"]], ["seed", run["seed"]],
        ["started", _utc(run["started_utc"])], ["finished", _utc(run["finished_utc"])],
        ["blocks (aborted)", f"{len(blocks)} ({len(blocks) - len(ok)})"],
        ["bench time", f"{total_s:.4g} s"], ["sifted Z bits", sifted], ["secret bits", secret],
        ["secret key rate", f"{_fmt(secret / total_s if total_s else None)} bit/s"],
        ["mean QBER Z", _fmt(sum(qz) / len(qz) if qz else None)],
        ["tuner probes", f"{sum(probes.values())} ({probe_s:.4g} s of bench time)"],
        ["alarms", len(data.alarms)], ["abort reason", summary.get("abort_reason") or "-"],
    ]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>qkdctl run {html.escape(run['run_id'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>qkdctl run {html.escape(run['run_id'])}</h1>", _table(["", ""], facts)]
    if not blocks:
        parts.append("<p><em>The run has no blocks.</em></p>")
    else:
        alarm_t = sorted({at[a["block_id"]] for a in data.alarms if a["block_id"] in at})
        tuner_t = sorted({at[d["block_id"]] for d in data.tuner_decisions if d["block_id"] in at})
        parts += [
            "<h2>QBER and key rate</h2>",
            _img(figures.qber_figure(blocks, _threshold(run["config"]), alarm_t), "QBER per basis"),
            _img(figures.rate_figure(blocks), "key rates"),
            "<h2>Operating parameters and tuner actions</h2>",
            _img(figures.params_figure(blocks, data.params, tuner_t), "operating parameters"),
            "<p>Parameters constant during the run:</p>",
            _table(["parameter", "value"],
                   [[k, _fmt(next((x for x in v if math.isfinite(x)), None))] for k, v in sorted(data.params.items())
                    if k not in figures.varying_params(data.params)]),
            "<p>Tuner decisions (applied from a later block):</p>",
            _table(["after block", "tuner", "probes", "proposal", "reason"],
                   [[d["block_id"], d["tuner"], probes.get(d["block_id"], 0), d["proposal"], d["reason"]]
                    for d in data.tuner_decisions]),
            "<h2>Reconciliation</h2>",
            _img(figures.efficiency_figure(blocks), "reconciliation efficiency"),
            "<h2>Detectors</h2>",
            _img(figures.detector_rate_figure(blocks), "detector count rates"),
        ]
    parts += [
        "<h2>Alarms</h2>",
        _table(["block", "source", "severity", "message"],
               [[a["block_id"], a["source"], a["severity"], a["message"]] for a in data.alarms]),
        "<h2>Blocks</h2>",
        _table(["block", "status", "QBER Z", "QBER X", "sifted Z", "method", "f", "key bits", "key id", "reason"],
               [[b["block_id"], b["status"], _fmt(b["qber_z"]), _fmt(b["qber_x"]), b["sifted_bits_z"],
                 b["method"], _fmt(b["ec_efficiency"]), b["key_bits"], b["key_id"] or "-", b["abort_reason"] or ""]
                for b in blocks]),
        "<h2>Lab config</h2>", f"<pre>{html.escape(run['config'] or '')}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 run_id: str | None = None) -> Path:
    """Write the HTML report of a run (default RUN_DIR/report.html); return its path."""
    page = render_html(load_run(run_dir, run_id))
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise QkdInputError(f"cannot write report {str(path)!r}: {exc}") from None
    return path
