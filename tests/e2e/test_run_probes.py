"""Tuner probes on the embedded simulated bench, through the real drivers and `qkdctl run`."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.config import load_config
from qkdctl.engine import Engine
from qkdctl.hardware import intensity_params
from qkdctl.runner import block_settings, engine_options
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB
from qkdctl.tune.base import Tuner

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"


def _config(tmp_path, tuner_lines: str) -> Path:
    """sim_bench.toml with a still fiber (identity, no drift) and the given [tuner] body."""
    text = SIM_BENCH.read_text()
    text = text.replace('initial_rotation = "random"', 'initial_rotation = "identity"')
    text = text.replace("drift_rad_per_sqrt_s = 0.3 ", "drift_rad_per_sqrt_s = 0.0 ")
    assert 'polarization = "tomographic"' in text
    text = text.replace('[tuner]\npolarization = "tomographic"', "[tuner]\n" + tuner_lines)
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


class PaddleProber(Tuner):
    """Probes with the first paddle turned by `turn_deg`; keeps everything."""

    name = "paddle-prober"
    probe_budget = 1

    def __init__(self, turn_deg: float) -> None:
        self.turn_deg = turn_deg
        self.seen = []  # (paddle in force, paddle probed, probe report)

    def propose(self, history, params, probe=None):
        trial = {"pol.1": (params["pol.1"] + self.turn_deg) % 170.0}
        self.seen.append((params["pol.1"], trial["pol.1"], probe(trial, 0.005)))
        return None


@pytest.mark.slow
def test_probe_on_the_sim_is_measured_at_its_paddle_setting(tmp_path):
    cfg = load_config(str(_config(tmp_path, "")))
    tuner = PaddleProber(turn_deg=45.0)
    with _bench(cfg) as hw:
        eng = Engine(hw, block_settings(cfg), tmp_path / "run", options=engine_options(cfg),
                     tuners=[tuner], seed=5)
        summary = eng.run(blocks=2)
        paddle_after = hw.params()["pol.1"]
    assert summary.status == "ok" and summary.secret_bits > 0 and summary.probes == 2
    with RunDB(tmp_path / "run") as db:
        rows = db.blocks()
    for (in_force, trial, rep), row in zip(tuner.seen, rows):
        assert rep.params["pol.1"] == trial != in_force and rep.status == "probe" and rep.key_bits == 0
        assert rep.qber_z + rep.qber_x > 0.1  # a 45 degree paddle turn scrambles the states
        assert row["qber_z"] < 0.03 and row["report"]["params"]["pol.1"] == in_force
    assert paddle_after == tuner.seen[0][0]  # the probe's setting was put back


def _bench(cfg):
    from qkdctl.wiring import open_bench

    hw = open_bench(cfg, seed=5)
    hw.apply(intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db))
    return hw


@pytest.mark.slow
def test_run_with_spsa_probes_within_budget_and_makes_key(tmp_path):
    out = tmp_path / "run"
    cfg = _config(tmp_path, 'polarization = "spsa"\nprobe_budget = 4\nmax_probe_s = 0.002\n'
                            "options = {spsa = {seed = 1, deadband_fraction = 0.0, probe_budget = 4}}")
    result = CliRunner().invoke(app, ["run", str(cfg), "--blocks", "3", "--out", str(out), "--seed", "5",
                                      "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["secret_bits"] > 0
    assert summary["probes"] == 12  # SPSA: 2 steps of 2 probes after each block
    with RunDB(out) as db:
        rows = db.blocks()
    assert [r["report"]["probes"] for r in rows] == [4, 4, 4]
    assert all(r["report"]["probe_seconds"] == pytest.approx(4 * 0.001) for r in rows)  # spsa asks 1 ms
    assert all(r["report"]["tuner"]["probes_used"] == 4 for r in rows)
    alice = KeyStore(out / "keys" / "alice")
    assert len(alice.ids()) == 3 and {r["key_id"] for r in rows} == set(alice.ids())
    assert np.isfinite(summary["mean_qber"])


def test_spsa_wanting_more_than_the_budget_is_exit_2(tmp_path):
    cfg = _config(tmp_path, 'polarization = "spsa"\nprobe_budget = 2\noptions = {spsa = {seed = 1}}')
    result = CliRunner().invoke(app, ["run", str(cfg), "--blocks", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "probe_budget is 2" in result.output and "spsa: 4" in result.output
