"""Job ledger: submit without blocking, poll, fetch after a restart, cancel, errors recorded."""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import open_backend
from qkdctl.qml.ledger import JobLedger, decode_sampler_result
from qkdctl.store.rundb import RunDB

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def ry_pub(backend, angles):
    t = Parameter("t")
    qc = QuantumCircuit(1)
    qc.ry(t, 0)
    qc.measure_all()
    return (backend.isa([qc])[0], np.asarray(angles, dtype=float).reshape(-1, 1))


def test_submit_poll_fetch_on_aer_and_restart(tmp_path):
    RunDB(tmp_path).close()
    b = open_backend("aer", seed=1)
    led = JobLedger.open(tmp_path, "run1", b)
    h = led.submit(b.sampler(), [ry_pub(b, [0.0, np.pi])], shots=50, tag="t", payload={"k": 1})
    assert (h.shots, h.circuits, h.backend) == (50, 2, "aer")
    assert led.wait(h.job_id, 30) == "done"
    assert led.result(h.job_id) == [{"meas": [{"0": 50}, {"1": 50}]}]
    row = led.row(h.job_id)
    assert row["latency_s"] > 0 and row["shots"] == 50 and row["circuits"] == 2 and row["run_id"] == "run1"
    led.close()
    again = JobLedger.open(tmp_path)  # a new process: no live job objects, no backend
    assert again.status(h.job_id) == "done"
    assert again.result(h.job_id)[0]["meas"][1] == {"1": 50}
    assert [j["job_id"] for j in again.jobs()] == [h.job_id]


def test_local_job_not_finished_before_restart_is_lost(tmp_path):
    RunDB(tmp_path).close()
    led = JobLedger.open(tmp_path)
    with led.conn:
        led.conn.execute("INSERT INTO qml_jobs (job_id, run_id, backend, status, submitted_utc) "
                         "VALUES ('j1', 'r', 'aer', 'running', 0.0)")
    assert led.status("j1") == "lost"
    with pytest.raises(QkdInputError, match="no result .*lost.*did not survive"):
        led.result("j1")
    with pytest.raises(QkdInputError, match="no quantum job 'nope'"):
        led.status("nope")


def test_submit_kill_fetch_in_a_real_subprocess(tmp_path):
    RunDB(tmp_path).close()
    script = textwrap.dedent(f"""
        import os, numpy as np
        from qiskit import QuantumCircuit
        from qkdctl.qml.backends import open_backend
        from qkdctl.qml.ledger import JobLedger
        b = open_backend("aer", seed=2)
        qc = QuantumCircuit(1); qc.x(0); qc.measure_all()
        led = JobLedger.open({str(tmp_path)!r}, "r", b)
        h = led.submit(b.sampler(), b.isa([qc]), shots=30)
        led.wait(h.job_id, 60)
        print(h.job_id, flush=True)
        os._exit(0)  # killed: no clean shutdown
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split()[-1]
    assert JobLedger.open(tmp_path).result(job_id) == [{"meas": [{"1": 30}]}]


def test_cancel_and_submission_error_are_recorded(mocker):
    b = open_backend("aer", seed=1)
    led = JobLedger.in_memory("r", b)
    job = mocker.Mock()
    job.job_id.return_value = "slow"
    job.status.return_value = "RUNNING"
    sampler = mocker.Mock()
    sampler.run.return_value = job
    h = led.submit(sampler, [ry_pub(b, [0.1])], shots=10)
    assert led.status(h.job_id) == "running"
    assert led.cancel(h.job_id) == "cancelled"
    job.cancel.assert_called_once()
    assert led.cancel(h.job_id) == "cancelled"  # final: nothing more to do
    sampler.run.side_effect = RuntimeError("backend refused the circuits")
    with pytest.raises(QkdInputError, match="submission failed: RuntimeError: backend refused"):
        led.submit(sampler, [ry_pub(b, [0.1])], shots=10)
    bad = [r for r in led.jobs() if r["status"] == "error"]
    assert len(bad) == 1 and "backend refused" in bad[0]["error"]
    with pytest.raises(QkdInputError, match="shots must be"):
        led.submit(sampler, [], shots=0)


def test_failed_job_is_recorded_as_error(mocker):
    led = JobLedger.in_memory("r")
    job = mocker.Mock()
    job.job_id.return_value = "bad"
    job.status.return_value = "DONE"
    job.result.side_effect = RuntimeError("device calibration failed")
    sampler = mocker.Mock()
    sampler.run.return_value = job
    led.submit(sampler, [object()], shots=5)
    assert led.status("bad") == "error"
    assert "device calibration failed" in led.row("bad")["error"]


def test_ibm_job_fetched_by_id_after_restart(mocker, tmp_path):
    """Remote job: the ledger re-attaches via QiskitRuntimeService.job(id) and records queue time."""
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    aer = open_backend("aer", seed=3)
    real_result = aer.sampler().run([ry_pub(aer, [np.pi])], shots=20).result()
    service = mocker.Mock()
    service.backend.return_value = FakeManilaV2()
    remote = mocker.Mock()
    remote.job_id.return_value = "d5k1abc"
    remote.status.return_value = "QUEUED"
    sampler = mocker.Mock()
    sampler.run.return_value = remote
    ibm = open_backend("ibm:ibm_test", service_factory=lambda: service)
    RunDB(tmp_path).close()
    led = JobLedger.open(tmp_path, "r", ibm)
    led.submit(sampler, [object()], shots=20)
    assert led.status("d5k1abc") == "queued"
    led.close()
    # restart: the job finished on IBM's side meanwhile
    done = mocker.Mock()
    done.status.return_value = "DONE"
    done.result.return_value = real_result
    done.metrics.return_value = {"timestamps": {"created": "2026-01-01T10:00:00Z",
                                                "running": "2026-01-01T10:02:30Z"}}
    service.job.return_value = done
    assert JobLedger.open(tmp_path).status("d5k1abc") == "queued"  # no ibm backend open: cannot ask
    led2 = JobLedger.open(tmp_path, "r", ibm)
    assert led2.result("d5k1abc") == [{"meas": [{"1": 20}]}]
    service.job.assert_called_once_with("d5k1abc")
    assert led2.row("d5k1abc")["queue_s"] == pytest.approx(150.0)


def test_decode_sampler_result_shapes():
    b = open_backend("aer", seed=5)
    res = b.sampler().run([ry_pub(b, [0.0, np.pi, 0.0])], shots=8).result()
    assert decode_sampler_result(res) == [{"meas": [{"0": 8}, {"1": 8}, {"0": 8}]}]


def test_remote_jobs_are_polled_slowly_and_wait_honours_its_timeout(mocker):
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    service = mocker.Mock()
    service.backend.return_value = FakeManilaV2()
    ibm = open_backend("ibm:ibm_test", service_factory=lambda: service)
    job = mocker.Mock()
    job.job_id.return_value = "q1"
    job.status.return_value = "QUEUED"
    sampler = mocker.Mock()
    sampler.run.return_value = job
    led = JobLedger.in_memory("r", ibm)
    led.submit(sampler, [object()], shots=10)
    t0 = time.monotonic()
    assert led.wait("q1", 0.3) == "queued"
    assert time.monotonic() - t0 < 1.0
    assert job.status.call_count <= 2
