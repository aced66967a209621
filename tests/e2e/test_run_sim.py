"""End to end: `qkdctl run` on the embedded simulated bench, through the real drivers."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"


def _config(tmp_path, **sim_overrides) -> Path:
    """sim_bench.toml with a still fiber (no drift, identity) and extra [sim] lines."""
    text = SIM_BENCH.read_text()
    text = text.replace('initial_rotation = "random"', 'initial_rotation = "identity"')
    text = text.replace("drift_rad_per_sqrt_s = 1.0", "drift_rad_per_sqrt_s = 0.0")
    for table, lines in sim_overrides.items():
        text += f"\n[sim.{table}]\n" + "\n".join(lines) + "\n"
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def _run(args):
    result = CliRunner().invoke(app, args)
    return result, (json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None)


@pytest.mark.slow
def test_run_makes_identical_verified_keys_and_json_matches_db(tmp_path):
    out = tmp_path / "run"
    result, summary = _run(["run", str(_config(tmp_path)), "--blocks", "2", "--out", str(out),
                            "--seed", "5", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert summary["status"] == "ok" and summary["blocks"] == 2 and summary["secret_bits"] > 0
    alice, bob = KeyStore(out / "keys" / "alice"), KeyStore(out / "keys" / "bob")
    assert alice.ids() == bob.ids() and alice.ids()
    for key_id in alice.ids():
        np.testing.assert_array_equal(alice.read(key_id), bob.read(key_id))
    with RunDB(out) as db:
        rows = db.blocks()
        assert sum(r["key_bits"] for r in rows) == summary["secret_bits"]
        assert len(rows) == summary["blocks"]
        assert all(r["report"]["verified"] for r in rows if r["status"] == "ok")
        assert db.runs()[0]["status"] == "ok"


@pytest.mark.slow
def test_intercept_resend_aborts_every_block_without_key(tmp_path):
    out = tmp_path / "run"
    cfg = _config(tmp_path, eve=["intercept_resend_fraction = 1.0"])
    result, summary = _run(["run", str(cfg), "--blocks", "2", "--out", str(out), "--seed", "5", "--json",
                            "--quiet"])
    assert summary["blocks_aborted"] == summary["blocks"] == 2
    assert summary["secret_bits"] == 0
    assert KeyStore(out / "keys" / "alice").ids() == []
    with RunDB(out) as db:
        assert all("QBER" in r["abort_reason"] for r in db.blocks())


def test_bad_config_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r"block_seconds = [0-9.]+", "block_seconds = -1", SIM_BENCH.read_text()))
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "engine.block_seconds = -1" in result.output and "Traceback" not in result.output


def test_planning_config_cannot_run(tmp_path):
    result = CliRunner().invoke(app, ["run", "lab_configs/planning_example.toml"])
    assert result.exit_code == 2 and "[instruments]" in result.output
