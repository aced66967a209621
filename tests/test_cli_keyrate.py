"""`qkdctl keyrate`: JSON fields, optimisation, sweep, exit code 2 on bad input."""

import json

from typer.testing import CliRunner

from qkdctl.cli import app

runner = CliRunner()
CFG = "lab_configs/sim_bench.toml"


def run(*args):
    return runner.invoke(app, ["keyrate", *args])


def test_json_has_the_contract_fields():
    res = run(CFG, "--distance-km", "50", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("distance_km", "block_size", "asymptotic_bits_per_pulse", "finite_bits_per_pulse", "finite_key_bits"):
        assert key in out
    assert out["distance_km"] == 50.0 and out["block_size"] == 100000
    assert 0 < out["finite_bits_per_pulse"] < out["asymptotic_bits_per_pulse"]
    assert out["finite_key_bits"] == out["bound"]["key_length_bits"]


def test_distance_defaults_to_link_table_and_table_output():
    res = run(CFG)
    assert res.exit_code == 0, res.output
    assert "25.0" in res.stdout and "block size" in res.stdout


def test_optimize_does_not_lower_the_rate():
    plain = json.loads(run(CFG, "--distance-km", "90", "--json").stdout)
    best = json.loads(run(CFG, "--distance-km", "90", "--json", "--optimize").stdout)
    assert best["finite_bits_per_pulse"] >= plain["finite_bits_per_pulse"]


def test_sweep_reports_rates_and_max_distance():
    res = run(CFG, "--sweep", "--step-km", "25", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rates = [p["finite_bits_per_pulse"] for p in out["sweep"]]
    assert rates == sorted(rates, reverse=True)
    assert out["sweep"][-1]["distance_km"] <= out["max_distance_km"] < out["sweep"][-1]["distance_km"] + 25
    text = run(CFG, "--sweep", "--step-km", "25")
    assert "maximum distance" in text.stdout


def test_bad_config_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(CFG).read().replace("intensities = [0.5, 0.18, 2e-4]", "intensities = [0.5, 0.1, 0.2]"))
    res = run(str(bad), "--distance-km", "10")
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "ConfigError" in lines[0] and "mu2 > mu3" in lines[0]


def test_missing_file_and_missing_tables_exit_2(tmp_path):
    assert run(str(tmp_path / "none.toml")).exit_code == 2
    only_engine = tmp_path / "e.toml"
    only_engine.write_text("[engine]\nblocks = 2\n")
    res = run(str(only_engine), "--distance-km", "10")
    assert res.exit_code == 2 and "[link]" in res.output


def test_negative_distance_exit_2():
    res = run(CFG, "--distance-km", "-5")
    assert res.exit_code == 2 and "--distance-km" in res.output
