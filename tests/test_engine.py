import numpy as np
import pytest

from qkdctl.blockreport import Alarm
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

from tests.model_bench import model_at, model_engine


def _setup(tmp_path, distance_km=5.0, misalignment=None, **opts):
    model = model_at(distance_km)
    if misalignment is not None:
        model = model.__class__(**{**model.__dict__, "misalignment": misalignment})
    return model_engine(tmp_path, model, **opts)


def test_run_stores_identical_keys_and_agrees_with_db(tmp_path):
    summary = _setup(tmp_path).run(blocks=3)
    assert summary.status == "ok" and summary.blocks == 3
    assert summary.secret_bits > 0
    alice, bob = KeyStore(tmp_path / "keys" / "alice"), KeyStore(tmp_path / "keys" / "bob")
    assert alice.ids() == bob.ids() and len(alice.ids()) == 3 - summary.blocks_aborted
    for key_id in alice.ids():
        np.testing.assert_array_equal(alice.read(key_id), bob.read(key_id))
    with RunDB(tmp_path) as db:
        rows = db.blocks()
        assert [r["block_id"] for r in rows] == [0, 1, 2]
        assert db.key_ids() == set(alice.ids())
        assert sum(r["key_bits"] for r in rows) == summary.secret_bits
        assert db.runs()[0]["status"] == "ok"


def test_high_qber_aborts_run_without_keys(tmp_path):
    summary = _setup(tmp_path, misalignment=0.25, startup_blocks=3).run(blocks=10)
    assert summary.status == "aborted" and summary.blocks == 3
    assert "before any key" in summary.abort_reason
    assert summary.secret_bits == 0
    assert KeyStore(tmp_path / "keys" / "alice").ids() == []


def test_abort_alarm_discards_key(tmp_path):
    eng = _setup(tmp_path)
    eng.detectors.append(lambda rep, hist: [Alarm("test", "abort", "forced")])
    summary = eng.run(blocks=1)
    assert summary.blocks_aborted == 1 and summary.secret_bits == 0
    with RunDB(tmp_path) as db:
        row = db.blocks()[0]
    assert row["status"] == "aborted" and "forced" in row["abort_reason"] and row["key_id"] is None


def test_instrument_failure_marks_the_run_failed(tmp_path):
    from qkdctl.core.errors import InstrumentError

    eng = _setup(tmp_path)

    def broken(duration_s):
        raise InstrumentError("tagger: timeout")

    eng.hw.acquire = broken
    with pytest.raises(InstrumentError):
        eng.run(blocks=2)
    with RunDB(tmp_path) as db:
        run = db.runs()[0]
    assert run["status"] == "failed" and "tagger: timeout" in run["summary"]


def test_intensity_params_invert_intensities():
    from qkdctl.core.errors import ConfigError
    from qkdctl.hardware import intensities, intensity_params

    p = intensity_params((0.5, 0.18, 0.0), 1.0)
    assert p["voa.on.3"] == 0.0 and p["voa.3"] == 45.0
    assert intensities(p, 1.0) == pytest.approx((0.5, 0.18, 0.0))
    with pytest.raises(ConfigError, match="the VOA allows 0..45 dB"):
        intensity_params((2.0, 0.18, 0.0), 1.0)
