"""kill -9 or SIGTERM during a run: the run database and the key stores agree."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qkdctl.store.consistency import reconcile_stores
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

from tests.e2e.test_run_sim import _config


def _start_run(tmp_path, seed: int) -> tuple[subprocess.Popen, Path]:
    """A 50-block `qkdctl run` on the still simulated bench, in a real subprocess."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "qkdctl.cli", "run", str(_config(tmp_path)), "--blocks", "50",
           "--out", str(out), "--seed", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    return proc, out


def _wait_blocks(proc: subprocess.Popen, n: int, timeout_s: float = 240) -> int:
    """Read the run's output until it reported n blocks (or timeout); return how many it did."""
    seen, deadline = 0, time.monotonic() + timeout_s
    for line in proc.stdout:
        seen += line.startswith("block")
        if seen >= n or time.monotonic() > deadline:
            break
    return seen


@pytest.mark.slow
def test_kill_9_mid_run_leaves_consistent_stores(tmp_path):
    proc, out = _start_run(tmp_path, seed=3)
    try:
        seen = _wait_blocks(proc, 2)
        time.sleep(0.3)  # land inside the next block's processing or store
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert seen >= 2, "the run did not report two blocks"
    stores = [KeyStore(out / "keys" / "alice"), KeyStore(out / "keys" / "bob")]
    with RunDB(out) as db:
        reconcile_stores(db, stores)
        committed = db.key_ids()
        rows = db.blocks()
    assert len(rows) >= 2
    for store in stores:
        assert set(store.ids(available_only=True)) == committed
    for key_id in committed:
        np.testing.assert_array_equal(stores[0].read(key_id), stores[1].read(key_id))


@pytest.mark.slow
def test_sigterm_finishes_the_block_in_flight_and_stops(tmp_path):
    proc, out = _start_run(tmp_path, seed=4)
    try:
        _wait_blocks(proc, 1)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    with RunDB(out) as db:
        run = db.runs()[0]
        rows = db.blocks()
        committed = db.key_ids()
    assert run["status"] == "stopped" and 1 <= len(rows) < 50
    for store in (KeyStore(out / "keys" / "alice"), KeyStore(out / "keys" / "bob")):
        assert set(store.ids()) == committed  # nothing half-written: no orphan key
