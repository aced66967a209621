import json
import os
import stat

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.blockreport import BlockReport
from qkdctl.cli import app
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

KEY_BITS = (1000, 700, 1300)


@pytest.fixture
def run_dir(tmp_path, rng):
    """A run directory with three committed keys and one key no block row names (crash leftover)."""
    alice, bob = KeyStore(tmp_path / "keys" / "alice"), KeyStore(tmp_path / "keys" / "bob")
    with RunDB(tmp_path) as db:
        db.start_run("r1", "", 7)
        for block_id, n in enumerate(KEY_BITS):
            bits = rng.integers(0, 2, n, dtype=np.uint8)
            key_id = alice.add(bits)
            bob.add(bits, key_id=key_id)
            db.add_block("r1", BlockReport(block_id=block_id, key_bits=n, key_id=key_id))
        db.add_block("r1", BlockReport(block_id=3, status="aborted", abort_reason="test"))
    leftover = rng.integers(0, 2, 500, dtype=np.uint8)
    alice.add(leftover, key_id="uncommitted-key")
    return tmp_path


def _invoke(*args):
    return CliRunner().invoke(app, ["keys", *map(str, args)])


def _ids(run_dir):
    return KeyStore(run_dir / "keys" / "alice").ids()


def test_list_shows_ids_states_and_blocks(run_dir):
    res = _invoke("list", run_dir, "--json")
    assert res.exit_code == 0, res.output
    keys = json.loads(res.stdout)["keys"]
    assert [k["n_bits"] for k in keys] == [*KEY_BITS, 500]
    assert [k["state"] for k in keys] == ["available"] * 3 + ["uncommitted"]
    assert [k["block_id"] for k in keys] == [0, 1, 2, None]
    res = _invoke("list", run_dir)
    assert res.exit_code == 0 and "3000 bits available (alice)" in res.output


def test_export_by_ids_writes_0600_file_and_marks_only_that_side(run_dir, tmp_path_factory):
    ids = _ids(run_dir)
    path = tmp_path_factory.mktemp("out") / "key.bin"
    res = _invoke("export", run_dir, "--ids", f"{ids[0]},{ids[2]}", "--to", path, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out == {"key_ids": [ids[0], ids[2]], "bits": 2300, "path": str(path)}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    alice = KeyStore(run_dir / "keys" / "alice")
    expected = np.concatenate([alice.read(ids[0]), alice.read(ids[2])])
    assert path.read_bytes() == np.packbits(expected).tobytes()
    assert alice.ids(available_only=True) == [ids[1], "uncommitted-key"]
    assert KeyStore(run_dir / "keys" / "bob").ids(available_only=True) == ids[:3]
    again = path.with_name("again.bin")
    res = _invoke("export", run_dir, "--ids", ids[0], "--to", again)
    assert res.exit_code == 2 and "not available" in res.output and not again.exists()


def test_export_bits_takes_oldest_whole_keys_and_cuts(run_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "key.bin"
    res = _invoke("export", run_dir, "--bits", 1500, "--to", path)
    assert res.exit_code == 0, res.output
    ids = _ids(run_dir)
    alice = KeyStore(run_dir / "keys" / "alice")
    expected = np.concatenate([alice.read(ids[0]), alice.read(ids[1])])[:1500]
    data = path.read_bytes()
    assert len(data) == (1500 + 7) // 8 and data == np.packbits(expected).tobytes()
    assert alice.ids(available_only=True) == [ids[2], "uncommitted-key"]
    assert "exported 1500 bits from 2 key(s)" in res.output


def test_bob_side_exports_the_same_key(run_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    ids = _ids(run_dir)
    for side in ("alice", "bob"):
        res = _invoke("export", run_dir, "--ids", ids[1], "--side", side, "--to", d / f"{side}.bin")
        assert res.exit_code == 0, res.output
    assert (d / "alice.bin").read_bytes() == (d / "bob.bin").read_bytes()


def test_output_never_contains_key_bits(run_dir, tmp_path_factory):
    ids = _ids(run_dir)
    bits = KeyStore(run_dir / "keys" / "alice").read(ids[0])
    text = "".join(map(str, bits[:64]))
    res = _invoke("export", run_dir, "--ids", ids[0], "--to", tmp_path_factory.mktemp("o") / "k.bin", "--json")
    listing = _invoke("list", run_dir, "--json")
    for out in (res.output, listing.output):
        assert text not in out and np.packbits(bits).tobytes().hex()[:32] not in out


def test_existing_file_is_not_overwritten_and_nothing_consumed(run_dir, tmp_path):
    path = tmp_path / "exists.bin"
    path.write_bytes(b"keep")
    res = _invoke("export", run_dir, "--bits", 10, "--to", path)
    assert res.exit_code == 2 and "never overwrites" in res.output
    assert path.read_bytes() == b"keep"
    assert len(KeyStore(run_dir / "keys" / "alice").ids(available_only=True)) == 4


@pytest.mark.parametrize("args, message", [
    (["--ids", "uncommitted-key"], "not available"),
    (["--ids", "no-such-key"], "unknown"),
    (["--ids", "a", "--bits", "5"], "exactly one of"),
    ([], "exactly one of"),
    (["--bits", "3001"], "only 3000 are available"),
    (["--bits", "0"], "must be > 0"),
    (["--bits", "5", "--side", "eve"], "not one of"),
])
def test_bad_requests_exit_2_without_file(run_dir, tmp_path, args, message):
    path = tmp_path / "k.bin"
    res = _invoke("export", run_dir, *args, "--to", path)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not path.exists()
    assert len(KeyStore(run_dir / "keys" / "alice").ids(available_only=True)) == 4


def test_not_a_run_dir(tmp_path):
    res = _invoke("list", tmp_path)
    assert res.exit_code == 2 and "not a run directory" in res.output
