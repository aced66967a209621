import numpy as np
import pytest

from qkdctl.blockreport import Alarm, BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.store.consistency import reconcile_stores
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB


def test_block_round_trip(tmp_path):
    with RunDB(tmp_path) as db:
        db.start_run("r1", "[link]\n", seed=7)
        rep = BlockReport(block_id=0, qber_z=0.021, params={"att_db": 3.0},
                          alarms=[Alarm("rules", "warn", "qber rising")],
                          tuner={"name": "spsa", "proposal": {"att_db": 3.5}, "reason": "x"})
        db.add_block("r1", rep)
        db.finish_run("r1", "ok", {"blocks": 1})
        rows = db.blocks("r1")
    assert rows[0]["qber_z"] == pytest.approx(0.021)
    assert rows[0]["report"]["alarms"][0]["message"] == "qber rising"
    assert rows[0]["report"]["qber_x"] is None  # NaN stored as null
    with RunDB(tmp_path) as db:
        assert db.runs()[0]["status"] == "ok"
        n = db.conn.execute("SELECT COUNT(*) FROM tuner_decisions").fetchone()[0]
        assert n == 1
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_duplicate_block_is_rejected_atomically(tmp_path):
    with RunDB(tmp_path) as db:
        db.add_block("r", BlockReport(block_id=1, params={"a": 1.0}))
        with pytest.raises(Exception):
            db.add_block("r", BlockReport(block_id=1, params={"a": 2.0}))
        assert db.conn.execute("SELECT COUNT(*) FROM params").fetchone()[0] == 1


def test_reconcile_drops_orphan_keys(tmp_path, rng):
    store = KeyStore(tmp_path / "keys")
    kept = store.add(rng.integers(0, 2, 32, dtype=np.uint8))
    orphan = store.add(rng.integers(0, 2, 32, dtype=np.uint8))
    with RunDB(tmp_path) as db:
        db.add_block("r", BlockReport(block_id=0, key_id=kept, key_bits=32))
        assert reconcile_stores(db, [store]) == [orphan]
        assert KeyStore(tmp_path / "keys").ids(available_only=True) == [kept]
        db.add_block("r", BlockReport(block_id=1, key_id="missing", key_bits=1))
        with pytest.raises(QkdInputError, match="absent from"):
            reconcile_stores(db, [store])
