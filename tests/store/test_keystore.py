import os
import stat

import numpy as np
import pytest

from qkdctl.store.keystore import KeyStore, KeyStoreError


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_round_trip_and_permissions(tmp_path, rng):
    store = KeyStore(tmp_path / "keys")
    keys = [rng.integers(0, 2, n, dtype=np.uint8) for n in (13, 64, 1000)]
    ids = [store.add(k) for k in keys]
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(tmp_path / "keys" / "keys.bin") == 0o600
    assert _mode(tmp_path / "keys" / "index.log") == 0o600
    reopened = KeyStore(tmp_path / "keys")
    for key_id, k in zip(ids, keys):
        np.testing.assert_array_equal(reopened.read(key_id), k)
    assert reopened.available_bits() == 13 + 64 + 1000


def test_index_holds_no_key_material(tmp_path):
    store = KeyStore(tmp_path)
    store.add(np.ones(4096, dtype=np.uint8))
    text = (tmp_path / "index.log").read_text()
    assert "1111" not in text and len(text) < 100


def test_get_key_consumes_oldest_first(tmp_path, rng):
    store = KeyStore(tmp_path)
    a = rng.integers(0, 2, 100, dtype=np.uint8)
    b = rng.integers(0, 2, 100, dtype=np.uint8)
    ia, ib = store.add(a), store.add(b)
    ids, bits = store.get_key(150, purpose="auth")
    assert ids == [ia, ib]
    np.testing.assert_array_equal(bits, np.concatenate([a, b])[:150])
    assert store.available_bits() == 0
    with pytest.raises(KeyStoreError, match="only 0 are available"):
        store.get_key(1, purpose="auth")
    assert KeyStore(tmp_path).entries()[0].used_for == "auth"


def test_get_key_with_ids_and_drop(tmp_path, rng):
    store = KeyStore(tmp_path)
    a = store.add(rng.integers(0, 2, 10, dtype=np.uint8))
    b = store.add(rng.integers(0, 2, 10, dtype=np.uint8))
    store.drop(a, "block not in run database")
    with pytest.raises(KeyStoreError, match="not available"):
        store.get_key_with_ids([a], purpose="export")
    assert store.get_key_with_ids([b], purpose="export").size == 10
    with pytest.raises(KeyStoreError, match="unknown key id"):
        store.read("nope")


def test_crash_leftovers_are_ignored_and_overwritten(tmp_path, rng):
    store = KeyStore(tmp_path)
    k1 = rng.integers(0, 2, 80, dtype=np.uint8)
    i1 = store.add(k1)
    # A crash after writing key bytes but before the index line, and a torn index line.
    with open(tmp_path / "keys.bin", "ab") as f:
        f.write(b"\xff" * 7)
    with open(tmp_path / "index.log", "a") as f:
        f.write("add deadbeef 10")
    store = KeyStore(tmp_path)
    assert store.ids() == [i1]
    k2 = rng.integers(0, 2, 16, dtype=np.uint8)
    i2 = store.add(k2)
    np.testing.assert_array_equal(store.read(i2), k2)
    np.testing.assert_array_equal(store.read(i1), k1)
    assert KeyStore(tmp_path).ids() == [i1, i2]


def test_rejects_non_bits(tmp_path):
    store = KeyStore(tmp_path)
    with pytest.raises(KeyStoreError, match="only bits"):
        store.add(np.array([0, 2, 1]))
    with pytest.raises(KeyStoreError, match="non-empty"):
        store.add(np.array([], dtype=np.uint8))
