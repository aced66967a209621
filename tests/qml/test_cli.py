"""`qkdctl qml ...` on a run directory's ledger; one `qkdctl run` with a QML tuner on a fake backend."""

import json
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from typer.testing import CliRunner

from qkdctl.cli import app
from qkdctl.qml.backends import open_backend
from qkdctl.qml.ledger import JobLedger
from qkdctl.store.rundb import RunDB

SIM_BENCH = Path(__file__).resolve().parents[2] / "lab_configs" / "sim_bench.toml"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_backends_lists_local_names():
    res = invoke("qml", "backends", "--json")
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert "aer" in out["aer"] and "aer:manila" in out["aer"] and "fake:manila" in out["fake"]


def test_jobs_status_fetch_cancel(tmp_path):
    RunDB(tmp_path).close()
    b = open_backend("aer", seed=1)
    led = JobLedger.open(tmp_path, "r", b)
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    h = led.submit(b.sampler(), b.isa([qc]), shots=40, tag="cli")
    assert led.wait(h.job_id, 30) == "done"
    led.close()
    res = invoke("qml", "jobs", tmp_path, "--json")
    assert res.exit_code == 0
    (row,) = json.loads(res.stdout)["jobs"]
    assert (row["job_id"], row["status"], row["shots"], row["tag"]) == (h.job_id, "done", 40, "cli")
    assert invoke("qml", "status", tmp_path, h.job_id).stdout.strip() == "done"
    res = invoke("qml", "fetch", tmp_path, h.job_id)
    assert json.loads(res.stdout) == {"job_id": h.job_id, "counts": [{"meas": [{"1": 40}]}]}
    assert invoke("qml", "cancel", tmp_path, h.job_id).stdout.strip() == "done"  # finished: nothing to cancel


@pytest.mark.parametrize("args,match", [(("jobs", "{nowhere}"), "no run database"),
                                        (("status", "{run}", "nope"), "no quantum job 'nope'"),
                                        (("fetch", "{run}", "nope"), "no quantum job 'nope'")])
def test_errors_are_one_line_exit_2(tmp_path, args, match):
    RunDB(tmp_path / "run").close()
    argv = [a.format(nowhere=tmp_path / "x", run=tmp_path / "run") for a in args]
    res = invoke("qml", *argv)
    assert res.exit_code == 2
    assert match in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_qkdctl_run_with_qml_tuner_on_a_fake_backend(tmp_path):
    text = SIM_BENCH.read_text().replace('polarization = "tomographic"', 'polarization = "qml-compile-pshift"')
    text += '\n[tuner.options.qml-compile-pshift]\nseed = 4\nbackend = "fake:manila"\nshots = 128\nmax_iter = 2\n'
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    res = invoke("run", cfg, "--blocks", "6", "--out", out, "--seed", "5", "--json", "--quiet")
    assert res.exit_code in (0, 4), res.output
    jobs = json.loads(invoke("qml", "jobs", out, "--json").stdout)["jobs"]
    assert jobs and all(j["backend"] == "fake:manila" and j["shots"] == 128 for j in jobs)
    with RunDB(out) as db:
        reasons = [r[0] for r in db.conn.execute("SELECT reason FROM tuner_decisions WHERE tuner LIKE 'qml%'")]
    assert any(r.startswith("train:") for r in reasons)
    done = [j for j in jobs if j["status"] == "done"]
    assert done and json.loads(invoke("qml", "fetch", out, done[0]["job_id"]).stdout)["counts"]
