"""kill -9 during a run loses at most the block in flight; DB and key stores agree."""

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


@pytest.mark.slow
def test_kill_9_mid_run_leaves_consistent_stores(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "qkdctl.cli", "run", str(_config(tmp_path)), "--blocks", "50",
           "--out", str(out), "--seed", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    seen = 0
    deadline = time.monotonic() + 240
    try:
        for line in proc.stdout:
            if line.startswith("block"):
                seen += 1
            if seen >= 2 or time.monotonic() > deadline:
                break
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
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "qkdctl.cli", "run", str(_config(tmp_path)), "--blocks", "50",
           "--out", str(out), "--seed", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    seen = 0
    try:
        for line in proc.stdout:
            if line.startswith("block"):
                seen += 1
            if seen >= 1:
                break
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
    stores = [KeyStore(out / "keys" / "alice"), KeyStore(out / "keys" / "bob")]
    for store in stores:
        assert set(store.ids()) == committed  # nothing half-written: no orphan key
