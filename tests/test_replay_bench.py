import json

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.config import load_config
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.hardware import ModelHardware
from qkdctl.replay_bench import ReplayHardware, config_from_text, operating_params, replay_run
from qkdctl.store.keystore import KeyStore
from qkdctl.store.recording import RecordingReader, RecordingWriter
from qkdctl.store.rundb import RunDB

PLANNING = """
[link]
fiber_loss_db_per_km = 0.2
detector_efficiency = 0.1
dark_count_prob = 6e-7
afterpulse_prob = 0.04
misalignment = 0.005
distance_km = 5.0

[protocol]
intensities = [0.5, 0.18, 2e-4]
intensity_probs = [0.2, 0.5, 0.3]
key_basis_prob = 0.7
block_size = 100000
eps_sec = 1e-10
eps_cor = 1e-15
ec_efficiency = 1.16
"""
# ModelHardware's timing: 1 GHz pulses, sync every 100 pulses, arrivals 300 ps after the clock.
TIMING = "\n[timing]\nsync_divider = 100\ngate_offset_ps = 300.0\n"
# Embedded simulated bench without polarization controller; its sync and detections
# arrive together, so the gate is centred on the clock (offset 0).
EMBEDDED = """
[instruments.tagger]
driver = "sim_tagger"
[instruments.alice]
driver = "sim_alice"
[instruments.voa]
driver = "keysight_n7764a"

[timing]
sync_divider = 100
gate_offset_ps = 0.0

[engine]
block_seconds = 0.01

[sim.fiber]
length_km = 5.0
"""


def _config_text() -> str:
    return PLANNING + TIMING


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 3-block recording of the link model at 5 km, with its config stored."""
    path = tmp_path_factory.mktemp("rec") / "model.h5"
    text = _config_text()
    cfg = config_from_text(text, "test")
    hw = ModelHardware(cfg.link_model(distance_km=5.0), np.random.default_rng(8), sync_divider=100)
    with RecordingWriter(path, config_text=text, seeds={"model": 8}) as w:
        for _ in range(3):
            acq = hw.acquire(0.01)
            acq.tags.meta["block_id"] = acq.block_id
            w.append(acq.tags, acq.alice)
    return path


def test_replay_makes_identical_keys_from_every_block(recording, tmp_path):
    summary = replay_run(recording, tmp_path, seed=4)
    assert summary.status == "ok" and summary.blocks == 3 and summary.blocks_aborted == 0
    assert summary.secret_bits > 0
    alice, bob = KeyStore(tmp_path / "keys" / "alice"), KeyStore(tmp_path / "keys" / "bob")
    assert len(alice.ids()) == 3
    for key_id in alice.ids():
        np.testing.assert_array_equal(alice.read(key_id), bob.read(key_id))
    with RunDB(tmp_path) as db:
        rows = db.blocks()
        run = db.runs()[0]
    assert [r["block_id"] for r in rows] == [0, 1, 2]
    assert all(r["duration_s"] == pytest.approx(0.01) for r in rows)
    assert rows[0]["report"]["params"]["voa.1"] == pytest.approx(operating_params(config_from_text(_config_text(), "t"))["voa.1"])
    assert run["config"] == _config_text() and run["seed"] == 4


def test_replay_is_reproducible_with_a_seed(recording, tmp_path):
    a = replay_run(recording, tmp_path / "a", seed=9, blocks=1)
    b = replay_run(recording, tmp_path / "b", seed=9, blocks=1)
    assert a.blocks == b.blocks == 1 and a.secret_bits == b.secret_bits
    ka, kb = KeyStore(tmp_path / "a" / "keys" / "alice"), KeyStore(tmp_path / "b" / "keys" / "alice")
    np.testing.assert_array_equal(ka.read(ka.ids()[0]), kb.read(kb.ids()[0]))


def test_replay_hardware_keeps_optics_fixed(recording):
    cfg = config_from_text(_config_text(), "t")
    with ReplayHardware.from_recording(recording, cfg) as hw:
        assert hw.n_blocks == 3 and hw.block_seconds() == pytest.approx(0.01)
        hw.apply({"gate.offset_ps": 310.0})
        assert hw.params()["gate.offset_ps"] == 310.0
        with pytest.raises(QkdInputError, match="voa.1"):
            hw.apply({"voa.1": 5.0})
        ids = [hw.acquire(0.01).block_id for _ in range(3)]
        assert ids == [0, 1, 2]
        with pytest.raises(QkdInputError, match="exhausted"):
            hw.acquire(0.01)


def test_empty_recording_and_missing_config_are_input_errors(tmp_path):
    path = tmp_path / "empty.h5"
    RecordingWriter(path, config_text="").close()
    with pytest.raises(QkdInputError, match="no complete block"):
        ReplayHardware.from_recording(path, config_from_text(_config_text(), "t"))
    with pytest.raises(ConfigError, match="no config text"):
        replay_run(path, tmp_path / "out")


def test_replay_with_a_config_lacking_protocol_is_config_error(recording, tmp_path):
    cfg = config_from_text("[timing]\nsync_divider = 100\n", "plain.toml")
    with pytest.raises(ConfigError, match="protocol"):
        replay_run(recording, tmp_path, cfg)


def test_cli_replay_json_and_bad_file(recording, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["replay", str(recording), "--out", str(tmp_path / "o"), "--json", "--seed", "2",
                              "--blocks", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["blocks"] == 1 and summary["secret_bits"] > 0
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    res = runner.invoke(app, ["replay", str(bad)])
    assert res.exit_code == 2 and "not a readable HDF5" in res.output and "Traceback" not in res.output


def test_cli_record_then_replay_embedded_bench(tmp_path):
    """End to end: record the embedded simulated bench over real transports, replay it."""
    config = tmp_path / "bench.toml"
    config.write_text(PLANNING + EMBEDDED)
    out = tmp_path / "r.h5"
    runner = CliRunner()
    res = runner.invoke(app, ["record", str(config), "--seconds", "0.02", "--out", str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    with RecordingReader(out) as r:
        assert len(r) == 2 and r.seeds == {"bench": 3} and "[sim.fiber]" in r.config_text
    res = runner.invoke(app, ["replay", str(out), "--json", "--seed", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["blocks"] == 2 and summary["blocks_aborted"] == 0 and summary["mean_qber"] < 0.03
    assert summary["out_dir"] == str(tmp_path / "r.replay")


def test_cli_record_without_instruments_is_config_error(tmp_path):
    config = tmp_path / "plan.toml"
    config.write_text(PLANNING)
    res = CliRunner().invoke(app, ["record", str(config), "--seconds", "1",
                                   "--out", str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "[instruments]" in res.output


def test_cli_replay_ptu_with_alice_file(tmp_path):
    """A T2 PTU file of three 10 ms blocks and Alice's .npz with slot timing: two whole windows."""
    from drivers.tagger.ptu_writer import PtuWriter

    config = tmp_path / "ptu.toml"
    config.write_text(PLANNING + TIMING + "\n[engine]\nblock_seconds = 0.01\n")
    cfg = load_config(config)
    hw = ModelHardware(cfg.link_model(), np.random.default_rng(6), sync_divider=100)
    acqs = [hw.acquire(0.01) for _ in range(3)]
    with PtuWriter(tmp_path / "run.ptu") as w:
        for acq in acqs:
            w.write_block(acq.tags)
    np.savez(tmp_path / "alice.npz", basis=np.concatenate([a.alice.basis for a in acqs]),
             bit=np.concatenate([a.alice.bit for a in acqs]),
             intensity=np.concatenate([a.alice.intensity for a in acqs]),
             first_slot=0, slot_period_ps=1000.0, slot0_t_ps=0.0)
    runner = CliRunner()
    res = runner.invoke(app, ["replay", str(tmp_path / "run.ptu"), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 2 and "needs --config and --alice" in res.output
    res = runner.invoke(app, ["replay", str(tmp_path / "run.ptu"), "--config", str(config), "--alice",
                              str(tmp_path / "alice.npz"), "--out", str(tmp_path / "o"), "--json", "--seed", "3"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["blocks"] == 2 and summary["blocks_aborted"] == 0 and summary["secret_bits"] > 0
    with RunDB(tmp_path / "o") as db:
        assert db.runs()[0]["config"] == config.read_text()
