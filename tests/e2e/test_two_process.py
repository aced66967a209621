"""End to end: Alice and Bob as two `qkdctl run` processes over the authenticated TCP channel,
against one simulated bench served in the test process."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qkdctl.config import load_config
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.roles import parse_peer, read_auth_key, run_role
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB
from qkdctl.wiring import sim_config_of

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"


def _still_bench_text() -> str:
    text = SIM_BENCH.read_text()
    text = text.replace('initial_rotation = "random"', 'initial_rotation = "identity"')
    return text.replace("drift_rad_per_sqrt_s = 1.0", "drift_rad_per_sqrt_s = 0.0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path):
    """A SimServer of the still bench, and the bench config pointing at its resources."""
    from firmware_sim.serve import SimServer

    base = tmp_path / "base.toml"
    base.write_text(_still_bench_text())
    server = SimServer.from_config(sim_config_of(load_config(base)), seed=11)
    res = server.start()
    text = _still_bench_text()
    for table, resource in (("tagger", res.tagger), ("alice", res.alice), ("voa", res.voa),
                            ("polarization", res.mpc320)):
        head = f"[instruments.{table}]\n"
        start = text.index(head)
        line = text.index('resource = "embedded"', start)
        text = text[:line] + f'resource = "{resource}"' + text[line + len('resource = "embedded"'):]
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text)
    yield cfg
    server.stop()


def _spawn(cfg, role, out, port, key_file, blocks=2):
    args = [sys.executable, "-m", "qkdctl.cli", "run", str(cfg), "--role", role, "--peer", f"127.0.0.1:{port}",
            "--auth-key-file", str(key_file), "--out", str(out), "--blocks", str(blocks), "--seed", "3",
            "--json", "--quiet"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_make_the_same_keys(served, tmp_path):
    key_file = tmp_path / "auth.hex"
    key_file.write_text(np.random.default_rng(1).bytes(48).hex())
    port = _free_port()
    alice = _spawn(served, "alice", tmp_path / "alice", port, key_file)
    bob = _spawn(served, "bob", tmp_path / "bob", port, key_file)
    b_out, b_err = bob.communicate(timeout=120)
    a_out, a_err = alice.communicate(timeout=60)
    assert bob.returncode == 0, b_err
    assert alice.returncode == 0, a_err
    b_sum = json.loads(b_out.strip().splitlines()[-1])
    a_sum = json.loads(a_out.strip().splitlines()[-1])
    assert b_sum["blocks"] == a_sum["blocks"] == 2
    assert b_sum["secret_bits"] > 0 and a_sum["secret_bits"] == b_sum["secret_bits"]
    a_store, b_store = KeyStore(tmp_path / "alice" / "keys" / "alice"), KeyStore(tmp_path / "bob" / "keys" / "bob")
    assert a_store.ids() == b_store.ids() and b_store.ids()
    for key_id in b_store.ids():
        np.testing.assert_array_equal(a_store.read(key_id), b_store.read(key_id))
    assert not (tmp_path / "bob" / "keys" / "alice").exists()
    with RunDB(tmp_path / "bob") as db:
        rows = db.blocks()
        assert len(rows) == 2
        assert {r["key_id"] for r in rows if r["status"] == "ok"} == set(b_store.ids())
        assert sum(r["key_bits"] for r in rows) == b_sum["secret_bits"]
        ok = [r["report"] for r in rows if r["status"] == "ok"]
        assert all(r["verified"] and r["counts"]["click_matrix"] is not None for r in ok)


@pytest.mark.slow
def test_wrong_auth_key_fails_cleanly_without_key(served, tmp_path):
    good, bad = tmp_path / "good.key", tmp_path / "bad.key"
    good.write_bytes(np.random.default_rng(1).bytes(40))
    bad.write_bytes(np.random.default_rng(2).bytes(40))
    port = _free_port()
    alice = _spawn(served, "alice", tmp_path / "alice", port, good, blocks=1)
    bob = _spawn(served, "bob", tmp_path / "bob", port, bad, blocks=1)
    _, b_err = bob.communicate(timeout=120)
    _, a_err = alice.communicate(timeout=60)
    for proc, err in ((alice, a_err), (bob, b_err)):
        assert proc.returncode == 3, err
        assert len(err.strip().splitlines()) == 1 and "channel" in err
    assert "bad MAC" in a_err
    for side in ("alice", "bob"):
        store_dir = tmp_path / side / "keys" / side
        assert not store_dir.exists() or not KeyStore(store_dir).ids()


def test_auth_key_file_hex_raw_short_missing(tmp_path):
    hex_file, raw_file, short = tmp_path / "k.hex", tmp_path / "k.bin", tmp_path / "short"
    hex_file.write_text(bytes(range(32)).hex() + "\n")
    raw_file.write_bytes(b"\xff" * 33)
    short.write_bytes(b"x" * 31)
    assert read_auth_key(hex_file) == bytes(range(32))
    assert read_auth_key(raw_file) == b"\xff" * 33
    with pytest.raises(QkdInputError, match="31 bytes; at least 32"):
        read_auth_key(short)
    with pytest.raises(QkdInputError, match="no such file"):
        read_auth_key(tmp_path / "absent")


def test_peer_and_role_arguments_are_checked(tmp_path):
    assert parse_peer("10.0.0.2:7000") == ("10.0.0.2", 7000)
    for bad in ("nohost", ":7000", "host:", "host:99999", "host:x"):
        with pytest.raises(QkdInputError, match="HOST:PORT"):
            parse_peer(bad)
    cfg = load_config(SIM_BENCH)
    key = tmp_path / "k"
    key.write_bytes(b"k" * 32)
    common = dict(blocks=1, seconds=None, seed=1)
    with pytest.raises(QkdInputError, match="--role must be"):
        run_role("carol", "h:1", str(key), cfg, "", tmp_path, **common)
    with pytest.raises(QkdInputError, match="needs --peer"):
        run_role("bob", None, str(key), cfg, "", tmp_path, **common)
    with pytest.raises(ConfigError, match="qkdctl sim serve"):
        run_role("alice", "127.0.0.1:1", str(key), cfg, "", tmp_path, **common)
    with pytest.raises(ConfigError, match="qkdctl sim serve"):
        run_role("bob", "127.0.0.1:1", str(key), cfg, "", tmp_path, **common)


class _Host:
    """Alice's record source for one block (what AliceHostClient.get_record returns)."""

    def __init__(self, record):
        self.record = record

    def get_record(self, block_id):
        return self.record


def _alice_thread(rng, tmp_path):
    import threading

    from qkdctl.core.records import AliceRecord
    from qkdctl.protocol.auth import KeyPool
    from qkdctl.protocol.channel import in_process_pair
    from qkdctl.roles import AliceRole
    from qkdctl.runner import block_settings

    settings = block_settings(load_config(SIM_BENCH))
    n = 4000
    record = AliceRecord(rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n))
    a_ch, b_ch = in_process_pair(KeyPool(b"k" * 32), KeyPool(b"k" * 32))
    role = AliceRole(_Host(record), settings, KeyStore(tmp_path / "keys" / "alice"), rng)
    errors = []

    def serve():
        try:
            role.serve(a_ch)
        except Exception as exc:  # the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    from qkdctl.roles import _hello

    b_ch.send(_hello(settings))
    b_ch.recv(5).expect("session/ok")
    return record, b_ch, thread, errors


def test_alice_refuses_sift_keep_with_slots_bob_did_not_report(rng, tmp_path):
    from qkdctl.core.errors import ProtocolError
    from qkdctl.protocol.messages import Message

    record, b_ch, thread, errors = _alice_thread(rng, tmp_path)
    slots = np.arange(0, 4000, 7, dtype=np.int64)
    b_ch.send(Message("sift/request", {"block_id": 0, "slots": slots, "guess": 0, "sync_divider": 1000}))
    disclosed = b_ch.recv(5).expect("sift/disclose")
    shift = disclosed.int("shift")
    assert disclosed.array("basis", np.uint8, slots.size).tolist() == [
        int(record.basis[s + shift]) if 0 <= s + shift < len(record) else 0 for s in slots]
    z_inside = [s for s in slots if 0 <= s + shift < len(record) and record.basis[s + shift] == 0]
    forged = np.array(sorted(set(z_inside[:5]) | {int(slots[0]) + 1}), dtype=np.int64)  # one unreported slot
    b_ch.send(Message("sift/keep", {"z": forged, "x": np.zeros(0, dtype=np.int64)}))
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    assert "did not report" in str(errors[0])
    assert not KeyStore(tmp_path / "keys" / "alice").ids()


def test_alice_refuses_a_peer_config_that_disagrees(rng, tmp_path):
    from qkdctl.core.errors import ProtocolError
    from qkdctl.roles import _check_hello, _hello
    from qkdctl.runner import block_settings
    from dataclasses import replace

    settings = block_settings(load_config(SIM_BENCH))
    _check_hello(_hello(settings), settings)
    with pytest.raises(ProtocolError, match="mu differ"):
        _check_hello(_hello(replace(settings, mu=(0.6, 0.18, 2e-4))), settings)
    with pytest.raises(ProtocolError, match="eps_cor"):
        _check_hello(_hello(replace(settings, eps_cor=1e-12)), settings)
