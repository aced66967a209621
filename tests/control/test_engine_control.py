import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.config import load_config, parse_config
from qkdctl.control.actions import ActionSpace
from qkdctl.control.policy import FixedPolicy
from qkdctl.control.tuner import ControlTuner, control_tuner
from qkdctl.core.errors import QkdInputError
from qkdctl.store.rundb import RunDB
from tests.test_engine import _setup

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"
# a method switch the tests can see (both Cascade: fast on the small blocks of these tests)
SPACE = ActionSpace(methods=("cascade-biconf", "cascade-efficient"))


def test_engine_applies_block_length_gate_method_and_basis_bias_between_blocks(tmp_path):
    eng = _setup(tmp_path, queue_depth=1)
    eng.tuners.append(ControlTuner(FixedPolicy(SPACE, 14)))  # 0.02 s, cascade-efficient, 400 ps, P(Z) 0.9
    reports = []
    eng.on_block = reports.append
    summary = eng.run(blocks=6)
    assert summary.status == "ok"
    # the first acquisitions may start before the first decision (queue overlap)
    assert reports[0].duration_s == pytest.approx(0.01) and reports[-1].duration_s == pytest.approx(0.02)
    assert reports[-1].params["gate.width_ps"] == 400.0
    assert reports[0].params["alice.p_z"] == pytest.approx(0.7) and reports[-1].params["alice.p_z"] == 0.9
    assert reports[0].method == "cascade-biconf" and reports[1].method == "cascade-efficient"
    assert summary.acquired_s == pytest.approx(sum(r.duration_s for r in reports))
    with RunDB(tmp_path) as db:
        rows = db.conn.execute("SELECT tuner, proposal FROM tuner_decisions ORDER BY block_id").fetchall()
    assert [r[0] for r in rows] == ["control:fixed"] * 6
    assert json.loads(rows[0][1]) == {"block.seconds": 0.02, "gate.width_ps": 400.0, "alice.p_z": 0.9}
    assert reports[0].tuner["method"] == "cascade-efficient"


def test_control_table_is_validated():
    base = {"link": {"fiber_loss_db_per_km": 0.2, "detector_efficiency": 0.1, "dark_count_prob": 1e-7,
                     "afterpulse_prob": 0.0, "misalignment": 0.01}}
    assert parse_config({**base, "control": {"policy": "p.json"}}).control.backend == "aer"
    with pytest.raises(Exception, match="control"):
        parse_config({**base, "control": {"policy": "p.json", "epsilon": 0.1}})


def test_control_tuner_resolves_the_policy_next_to_the_config(tmp_path):
    FixedPolicy(ActionSpace(), 3).save(tmp_path / "p.json")
    cfg = parse_config({"control": {"policy": "p.json"}})
    tuner = control_tuner(cfg.control, tmp_path)
    assert tuner.name == "control:fixed" and tuner.policy.action_index == 3
    with pytest.raises(QkdInputError, match="policy file not found"):
        control_tuner(cfg.control, tmp_path / "elsewhere")


def _control_config(tmp_path: Path, policy_file: str) -> Path:
    text = SIM_BENCH.read_text().replace('polarization = "tomographic"', "")
    text = text.replace('initial_rotation = "random"', 'initial_rotation = "identity"')
    text = text.replace("drift_rad_per_sqrt_s = 0.3", "drift_rad_per_sqrt_s = 0.0")
    text = text.replace("max_consecutive_aborts = 5", "max_consecutive_aborts = 5\nqueue_depth = 1")
    cfg = tmp_path / "control.toml"
    cfg.write_text(text + f'\n[control]\npolicy = "{policy_file}"\n')
    load_config(cfg)
    return cfg


def test_qkdctl_run_with_a_control_policy_on_the_simulated_bench(tmp_path):
    FixedPolicy(SPACE, 10).save(tmp_path / "p.json")  # 0.02 s, cascade-efficient, 150 ps, P(Z) 0.9
    cfg = _control_config(tmp_path, "p.json")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(cfg), "--blocks", "4", "--out", str(out), "--json", "--seed", "5"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["blocks"] == 4 and summary["secret_bits"] > 0
    with RunDB(out) as db:
        blocks = db.blocks()
        decisions = db.conn.execute("SELECT tuner FROM tuner_decisions").fetchall()
    assert {d[0] for d in decisions} == {"control:fixed"}
    assert blocks[-1]["report"]["method"] == "cascade-efficient"
    assert blocks[-1]["report"]["params"]["block.seconds"] == 0.02
    # Alice's P(Z) changes between blocks on the simulated bench; Bob's splitter stays at 0.7, so
    # the X share of the sifted bits falls from 0.09 / 0.49 to 0.03 / 0.63
    first, last = blocks[0]["report"], blocks[-1]["report"]
    assert first["params"]["alice.p_z"] == pytest.approx(0.7) and last["params"]["alice.p_z"] == 0.9
    assert first["sifted_bits_x"] / first["sifted_bits_z"] == pytest.approx(0.09 / 0.49, rel=0.1)
    assert last["sifted_bits_x"] / last["sifted_bits_z"] == pytest.approx(0.03 / 0.63, rel=0.15)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", ["aer", "fake:manila"])
def test_vqc_policy_from_a_control_table_drives_the_engine(tmp_path, backend):
    from qkdctl.control.vqc import VqcPolicy
    from qkdctl.qml.backends import open_backend

    pol = VqcPolicy(SPACE, open_backend("aer", seed=1), layers=1, shots=8)
    pol.set_params(np.random.default_rng(3).normal(0, 1, pol.get_params().size))
    pol.save(tmp_path / "vqc.json")
    cfg = parse_config({"control": {"policy": "vqc.json", "backend": backend, "seed": 2}})
    tuner = control_tuner(cfg.control, tmp_path)
    assert tuner.name == "control:vqc" and tuner.policy.backend.spec == backend
    eng = _setup(tmp_path / "run")
    eng.tuners.append(tuner)
    assert eng.run(blocks=2).status == "ok"
    with RunDB(tmp_path / "run") as db:
        rows = db.conn.execute("SELECT tuner, reason FROM tuner_decisions").fetchall()
        jobs = db.conn.execute("SELECT backend, shots, status FROM qml_jobs").fetchall()
    assert [r[0] for r in rows] == ["control:vqc"] * 2 and "policy vqc: action" in rows[0][1]
    assert jobs == [(backend, 8, "done")] * 2  # the policy's sampler jobs, in the run's ledger
    assert tuner.policy.shots_used == 2 * 8


def test_two_tuners_on_one_block_are_recorded_as_one_combined_decision(tmp_path):
    from qkdctl.tune.base import Proposal, Tuner

    class Stub(Tuner):
        name = "stub"

        def propose(self, history, params, probe=None):
            return Proposal({"gate.offset_ps": 300.0}, "stub reason", probes_used=1)

    eng = _setup(tmp_path)
    eng.tuners += [Stub(), ControlTuner(FixedPolicy(SPACE, 1))]
    reports = []
    eng.on_block = reports.append
    eng.run(blocks=1)
    t = reports[0].tuner
    assert t["name"] == "stub+control:fixed" and t["probes_used"] == 1
    assert t["proposal"] == {"gate.offset_ps": 300.0, "block.seconds": 0.06, "gate.width_ps": 150.0,
                             "alice.p_z": 0.7}
    assert t["reason"].startswith("stub reason; policy fixed: action 1")
