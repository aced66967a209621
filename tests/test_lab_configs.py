"""Every shipped lab config validates; the real-bench example fails cleanly without hardware."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "lab_configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    cfg.require_planning()


def test_real_bench_without_swabian_library_is_exit_3():
    cfg = [p for p in CONFIGS if p.name == "real_bench_example.toml"][0]
    assert load_config(cfg).require_bench().tagger.driver == "swabian"
    result = CliRunner().invoke(app, ["run", str(cfg), "--blocks", "1", "--out", "/nonexistent/never"])
    assert result.exit_code == 3
    assert "Time Tagger library not installed" in result.output
    assert "Traceback" not in result.output
