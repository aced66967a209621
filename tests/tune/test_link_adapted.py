"""Alice's choice probabilities as operating parameters, their bookkeeping, the link-adapted tuner."""

from dataclasses import replace

import numpy as np
import pytest

from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.hardware import ModelHardware, choice_probabilities
from qkdctl.store.rundb import RunDB
from qkdctl.tune import make_tuner
from qkdctl.tune.base import Proposal, Tuner
from qkdctl.tune.link_adapted import LinkAdaptedTuner

from tests.model_bench import model_at, model_engine


_model = model_at


def _engine(tmp_path, model, tuners, block_seconds=0.01):
    return model_engine(tmp_path, model, tuners=tuners, block_seconds=block_seconds, startup_blocks=5,
                        queue_depth=1)


class _Scripted(Tuner):
    """Sets the given parameters once, after the first block."""

    name = "scripted"

    def __init__(self, params):
        self.params, self.done = params, False

    def propose(self, history, params, probe=None):
        if self.done:
            return None
        self.done = True
        return Proposal(self.params, "scripted change")


def test_choice_params_validate():
    assert choice_probabilities({"voa.1": 3.0}) is None
    p_z, p_mu = choice_probabilities({"alice.p_z": 0.8, "alice.p_signal": 0.6, "alice.p_decoy": 0.3})
    assert p_z == 0.8 and p_mu == pytest.approx((0.6, 0.3, 0.1))
    for bad, what in (({"alice.p_z": 1.0, "alice.p_signal": 0.6, "alice.p_decoy": 0.3}, "alice.p_z"),
                      ({"alice.p_z": 0.5, "alice.p_signal": 0.8, "alice.p_decoy": 0.3}, "p_signal"),
                      ({"alice.p_z": 0.5, "alice.p_signal": 0.8}, "need all")):
        with pytest.raises(QkdInputError, match=what):
            choice_probabilities(bad)


def test_model_hardware_sets_choice_probabilities():
    hw = ModelHardware(_model(5.0), np.random.default_rng(1), sync_divider=100)
    assert choice_probabilities(hw.params()) == (0.7, (0.2, 0.5, 0.3))
    with pytest.raises(QkdInputError, match="alice.p_z"):
        hw.apply({"alice.p_z": 0.0})
    assert hw.params()["alice.p_z"] == 0.7
    hw.apply({"alice.p_z": 0.9, "alice.p_signal": 0.6, "alice.p_decoy": 0.3})
    rec = hw.acquire(0.002).alice
    n = len(rec)
    assert abs(np.mean(rec.basis == 0) - 0.9) < 5 * np.sqrt(0.09 / n)
    assert abs(np.mean(rec.intensity == 2) - 0.1) < 5 * np.sqrt(0.09 / n)


def test_each_block_uses_the_probabilities_in_force_when_acquired(tmp_path):
    new = {"alice.p_z": 0.85, "alice.p_signal": 0.6, "alice.p_decoy": 0.3}
    eng = _engine(tmp_path, _model(5.0), [_Scripted(new)])
    seen = []
    process = eng.processor.process

    def spy(acq, settings, *args, **kwargs):
        seen.append((acq.block_id, settings.p_mu))
        return process(acq, settings, *args, **kwargs)

    eng.processor.process = spy
    eng.run(blocks=5)
    by_block = dict(seen)
    # the queue may acquire block 1 before block 0's retune: whichever block was acquired
    # with the new parameters uses them, the others the configured ones
    with RunDB(tmp_path) as db:
        rows = {r["block_id"]: r["report"] for r in db.blocks()}
    for block_id, p_mu in by_block.items():
        in_force = choice_probabilities(rows[block_id]["params"])
        assert p_mu == pytest.approx(in_force[1])
    assert by_block[0] == pytest.approx((0.2, 0.5, 0.3))
    assert by_block[4] == pytest.approx((0.6, 0.3, 0.1))


def test_link_adapted_tuner_converges_and_raises_key(tmp_path):
    tuner = make_tuner("link-adapted", 1.0, {"min_relative_gain": 0.1})
    assert isinstance(tuner, LinkAdaptedTuner)
    model = replace(_model(10.0), key_basis_prob=0.5)
    eng = _engine(tmp_path, model, [tuner], block_seconds=0.01)
    summary = eng.run(blocks=4)
    assert summary.status == "ok"
    with RunDB(tmp_path) as db:
        rows = [r["report"] for r in db.blocks()]
    moves = [r["tuner"] for r in rows if r.get("tuner")]
    assert moves and moves[0]["name"] == "link-adapted" and "P(Z)" in moves[0]["reason"]
    first = moves[0]["proposal"]
    assert set(first) == {"voa.1", "voa.2", "alice.p_z", "alice.p_signal", "alice.p_decoy"}
    for later in moves[1:]:  # converged: any later move stays near the first
        assert abs(later["proposal"]["alice.p_z"] - first["alice.p_z"]) < 0.05
    adapted = [r for r in rows if r["params"]["alice.p_z"] == pytest.approx(first["alice.p_z"])]
    assert adapted and adapted[-1]["key_bits"] > rows[0]["key_bits"]


def test_link_adapted_needs_choice_parameters_and_valid_options():
    tuner = LinkAdaptedTuner()
    with pytest.raises(ConfigError, match="min_relative_gain"):
        make_tuner("link-adapted", 1.0, {"min_relative_gain": -1})
    assert tuner.propose([], {}) is None


@pytest.mark.slow
def test_qkdctl_run_on_the_sim_adapts_choice_and_records_decisions(tmp_path):
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from qkdctl.cli import app

    text = (Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml").read_text()
    text = text.replace('initial_rotation = "random"', 'initial_rotation = "identity"')
    text = text.replace("drift_rad_per_sqrt_s = 1.0", "drift_rad_per_sqrt_s = 0.0")
    text = text.replace('polarization = "tomographic"\n', 'polarization = "tomographic"\nintensities = "link-adapted"\n')
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(cfg), "--blocks", "6", "--out", str(out), "--seed", "5",
                                      "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["secret_bits"] > 0
    with RunDB(out) as db:
        rows = [r["report"] for r in db.blocks()]
    decided = [r for r in rows if r.get("tuner") and "link-adapted" in r["tuner"]["name"]]
    assert decided, "the link-adapted tuner recorded no decision"
    proposal = decided[0]["tuner"]["proposal"]
    assert "alice.p_z" in proposal and "P(Z)" in decided[0]["tuner"]["reason"]
    assert rows[0]["params"]["alice.p_z"] == pytest.approx(0.7)
    # the sim's Alice took the new probabilities: later blocks were acquired with them
    assert any(r["params"]["alice.p_z"] == pytest.approx(proposal["alice.p_z"]) and r["key_bits"] > 0
               for r in rows[1:])
