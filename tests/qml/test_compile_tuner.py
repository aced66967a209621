"""QML compile tuner: known rotation, non-blocking waits, errors and timeouts recorded, SimBench end to end."""

import time

import numpy as np
import pytest

from benchmarks.tune_sim import KeyModel, SimBench, calibration_for, run_loop, sim_config
from drivers.polarization.calibration import PaddleCalibration
from firmware_sim.physics.polarization import detector_probabilities, random_su2
from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.qml.backends import open_backend
from qkdctl.qml.compile_tuner import QmlCompileTuner
from qkdctl.qml.compiler import CompileSettings
from qkdctl.tune import make_tuner

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def params(settings):
    return {f"pol.{i}": float(v) for i, v in enumerate(settings, 1)}


def report(i, fiber, cal, settings):
    cm = detector_probabilities(cal.rotation(settings) @ fiber, 0.5) * 1e6
    return BlockReport(block_id=i, counts={"click_matrix": cm.tolist()}, params=params(settings))


def run_until_proposal(tuner, history, prm, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prop = tuner.propose(history, prm)
        if prop is not None:
            return prop
        time.sleep(0.02)
    raise AssertionError("no proposal")


@pytest.mark.parametrize("method", ["pshift", "cobyla"])
def test_known_rotation_is_compensated(method):
    cal = PaddleCalibration()
    fiber = random_su2(np.random.default_rng(8))
    tuner = QmlCompileTuner(cal, open_backend("aer", seed=1),
                            CompileSettings(method=method, shots=4096, max_iter=30), np.random.default_rng(2))
    start = (10.0, 20.0, 30.0)
    history = [report(0, fiber, cal, start)]
    assert tuner.propose(history, params(start)) is None  # training started, not waited for
    assert tuner.decisions[0]["action"] == "train"
    prop = run_until_proposal(tuner, history, params(start))
    new = tuple(prop.params[f"pol.{k}"] for k in (1, 2, 3))
    total = cal.rotation(new) @ fiber
    # one block sees the channel only up to the mirror ambiguity: right, or the mirror image
    o_err = detector_probabilities(total, 0.5)
    qber_z = (o_err[0, 1] + o_err[1, 0]) / (o_err[0, :2].sum() + o_err[1, :2].sum())
    qber_x = (o_err[2, 3] + o_err[3, 2]) / (o_err[2, 2:].sum() + o_err[3, 2:].sum())
    assert qber_z + qber_x < 0.02
    assert prop.extra["shots"] > 0 and prop.extra["jobs"]
    assert any(d["action"] == "wait" for d in tuner.decisions) or len(tuner.decisions) == 1


def test_deadband_and_missing_settings():
    cal = PaddleCalibration()
    tuner = QmlCompileTuner(cal, open_backend("aer", seed=1), CompileSettings(), np.random.default_rng(0))
    zero = (0.0, 0.0, 0.0)
    assert tuner.propose([report(0, np.eye(2), cal, zero)], params(zero)) is None
    assert tuner.decisions == [] and tuner.ledger.jobs() == []
    with pytest.raises(QkdInputError, match="pol.1..pol.3"):
        tuner.propose([report(0, np.eye(2), cal, zero)], {"pol.1": 0.0})


def test_backend_error_keeps_parameters_and_is_recorded(mocker):
    cal = PaddleCalibration()
    backend = open_backend("aer", seed=1)
    mocker.patch.object(backend, "sampler", side_effect=RuntimeError("ibm backend in maintenance"))
    tuner = QmlCompileTuner(cal, backend, CompileSettings(), np.random.default_rng(0))
    s = (10.0, 20.0, 30.0)
    history = [report(0, random_su2(np.random.default_rng(1)), cal, s)]
    assert tuner.propose(history, params(s)) is None
    tuner._task.join(30)
    assert tuner.propose(history, params(s)) is None
    assert tuner.decisions[-1]["action"] == "error" and "maintenance" in tuner.decisions[-1]["reason"]
    rows = tuner.ledger.conn.execute("SELECT reason FROM tuner_decisions").fetchall()
    assert any("error: " in r[0] for r in rows)


def test_timeout_cancels_and_keeps_parameters(mocker):
    cal = PaddleCalibration()
    backend = open_backend("aer", seed=1)
    job = mocker.Mock()
    job.job_id.return_value = "never"
    job.status.return_value = "QUEUED"
    sampler = mocker.Mock()
    sampler.run.return_value = job
    mocker.patch.object(backend, "sampler", return_value=sampler)
    tuner = QmlCompileTuner(cal, backend, CompileSettings(job_timeout_s=30.0), np.random.default_rng(0),
                            timeout_s=0.3)
    s = (10.0, 20.0, 30.0)
    history = [report(0, random_su2(np.random.default_rng(1)), cal, s)]
    assert tuner.propose(history, params(s)) is None
    assert tuner.propose(history, params(s)) is None
    assert tuner.decisions[-1]["action"] == "wait"
    deadline = time.monotonic() + 60.0  # the training thread transpiles before it submits
    while not sampler.run.called and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sampler.run.called
    time.sleep(0.5)
    assert tuner.propose(history, params(s)) is None
    assert tuner.decisions[-1]["action"] == "timeout"
    job.cancel.assert_called()
    assert tuner.ledger.row("never")["status"] == "cancelled"


def test_factory_names_and_options():
    cal = PaddleCalibration()
    t = make_tuner("qml-compile", cal, {"seed": 1, "shots": 128})
    assert isinstance(t, QmlCompileTuner) and t.settings.method == "cobyla" and t.backend.spec == "aer"
    t = make_tuner("qml-compile-pshift", cal, {"seed": 1, "backend": "fake:manila", "timeout_s": 5.0})
    assert t.settings.method == "pshift" and t.backend.kind == "fake" and t.timeout_s == 5.0
    with pytest.raises(ConfigError, match="seed"):
        make_tuner("qml-compile", cal, {})
    with pytest.raises(ConfigError, match="unknown fake device"):
        make_tuner("qml-compile", cal, {"seed": 1, "backend": "fake:atlantis"})
    with pytest.raises(ConfigError, match="always uses method 'pshift'"):
        make_tuner("qml-compile-pshift", cal, {"seed": 1, "method": "spsa"})
    with pytest.raises(ConfigError, match="bad options"):
        make_tuner("qml-compile", cal, {"seed": 1, "bogus": 2})


class Patient(QmlCompileTuner):
    """Waits for its own training after starting it, so a SimBench loop is deterministic."""

    def propose(self, history, params, probe=None):
        prop = super().propose(history, params, probe)
        if self._task is not None:
            self._task.join(120)
        return prop


@pytest.mark.parametrize("name,spec,shots,max_iter", [("qml-compile-pshift", "aer", 1024, 15),
                                                      ("qml-compile-pshift", "fake:manila", 256, 6)])
def test_end_to_end_on_simbench(name, spec, shots, max_iter):
    """From a random initial rotation the tuner acquires through its jobs, one block after each training."""
    cfg = sim_config("default", "mpc320")
    cal = calibration_for(cfg)
    built = make_tuner(name, cal, {"seed": 3, "backend": spec, "shots": shots, "max_iter": max_iter})
    tuner = Patient(cal, built.backend, built.settings, np.random.default_rng(3))
    res = run_loop(SimBench(cfg, seed=3), tuner, 8, 5e-3, KeyModel(cfg), apply_lag_blocks=1)
    assert res.qber[0] > 0.2
    assert res.shots > 0 and tuner.ledger.jobs()
    assert min(res.qber[3:]) < 0.06
