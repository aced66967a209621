"""End to end: Alice's QRNG fails its health test -> the run stops, exit 4, no key."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"


@pytest.mark.parametrize("split_ratio", [1.0, 0.7], ids=["stuck", "biased"])
def test_failing_qrng_stops_the_run_without_keys(tmp_path, split_ratio):
    text = SIM_BENCH.read_text().replace("[sim]\n", '[sim]\nalice_choices = "qrng"\n', 1)
    text += f"\n[sim.qrng]\nsplit_ratio = {split_ratio}\n"
    config = tmp_path / "bench.toml"
    config.write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--blocks", "2", "--out", str(out), "--seed", "5",
                                      "--quiet"])
    assert result.exit_code == 4, result.output
    assert "QRNG stopped: health test failed" in result.output
    with RunDB(out) as db:
        runs = db.runs()
        assert len(runs) == 1 and runs[0]["status"] == "failed"
        assert "SecurityAbort" in runs[0]["summary"] and "QRNG stopped" in runs[0]["summary"]
        assert db.key_ids() == set()
    assert KeyStore(out / "keys" / "alice").ids() == [] and KeyStore(out / "keys" / "bob").ids() == []
