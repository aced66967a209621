"""Variational compiling of a channel inverse: circuits, cost, parameter shift, each optimizer."""

import numpy as np
import pytest
from qiskit.quantum_info import Operator

from firmware_sim.physics.polarization import random_su2
from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import open_backend
from qkdctl.qml.compiler import CompileSettings, CompileTask, ansatz_unitary, compile_circuits, exact_cost
from qkdctl.qml.ledger import JobLedger
from qkdctl.tune.polarization import su2_fidelity

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def test_ansatz_matches_the_circuit(rng):
    h_qc, _, theta = compile_circuits(np.eye(2))
    body = h_qc.remove_final_measurements(inplace=False)
    for _ in range(3):
        t = rng.uniform(-np.pi, np.pi, 3)
        op = Operator(body.assign_parameters(dict(zip(theta, t)))).data
        assert su2_fidelity(op, ansatz_unitary(t)) == pytest.approx(1.0, abs=1e-12)


def test_exact_cost_by_hand():
    assert exact_cost(np.eye(2), np.zeros(3)) == pytest.approx(0.0)
    # channel = bit flip X (H -> V, D -> D): QBER_Z = 1, QBER_X = 0
    assert exact_cost(np.array([[0, 1], [1, 0]]), np.zeros(3)) == pytest.approx(1.0)
    # V = RX(pi) undoes it (up to phase)
    assert exact_cost(np.array([[0, 1], [1, 0]]), np.array([np.pi, 0, 0])) == pytest.approx(0.0, abs=1e-12)


def test_parameter_shift_rule_is_exact_for_this_cost(rng):
    u = random_su2(rng)
    for _ in range(3):
        t = rng.uniform(-np.pi, np.pi, 3)
        for i in range(3):
            e = np.eye(3)[i]
            shift = 0.5 * (exact_cost(u, t + np.pi / 2 * e) - exact_cost(u, t - np.pi / 2 * e))
            h = 1e-6
            fd = (exact_cost(u, t + h * e) - exact_cost(u, t - h * e)) / (2 * h)
            assert shift == pytest.approx(fd, abs=1e-6)


def test_sampled_cost_agrees_with_exact(rng):
    u = random_su2(rng)
    thetas = rng.uniform(-1, 1, (4, 3))
    b = open_backend("aer", seed=7)
    task = CompileTask(b, JobLedger.in_memory(backend=b), u, CompileSettings(shots=20000), rng)
    h_qc, d_qc, _ = compile_circuits(u)
    task._isa, task._sampler = b.isa([h_qc, d_qc]), b.sampler()
    got = task._costs(thetas)
    want = [exact_cost(u, t) for t in thetas]
    assert np.allclose(got, want, atol=0.02)


@pytest.mark.parametrize("method,max_iter", [("pshift", 12), ("cobyla", 30), ("spsa", 40)])
def test_each_method_compiles_a_known_rotation_on_aer(rng, method, max_iter):
    from scipy.spatial.transform import Rotation

    from qkdctl.tune.polarization import su2_from_rotation

    u = su2_from_rotation(Rotation.from_rotvec([0.4, -0.3, 0.5]))
    b = open_backend("aer", seed=11)
    led = JobLedger.in_memory(backend=b)
    res = CompileTask(b, led, u, CompileSettings(method=method, shots=2048, max_iter=max_iter), rng).start().join(120)
    assert res.error == ""
    assert exact_cost(u, res.theta) < 0.02
    assert su2_fidelity(ansatz_unitary(res.theta) @ u, np.eye(2)) > 0.99
    assert len(res.jobs) == len(led.jobs()) and res.shots == sum(j["shots"] * j["circuits"] for j in led.jobs())


def test_pshift_on_a_fake_device_with_few_shots(rng):
    u = random_su2(np.random.default_rng(3))
    b = open_backend("fake:manila", seed=5)
    res = CompileTask(b, JobLedger.in_memory(backend=b), u, CompileSettings(method="pshift", shots=256, max_iter=4),
                      rng, theta0=np.zeros(3)).start().join(120)
    assert res.error == ""
    assert res.iterations == 5 and len(res.jobs) == 5
    assert exact_cost(u, res.theta) < exact_cost(u, np.zeros(3))


def test_bad_settings_and_channel():
    with pytest.raises(QkdInputError, match="method"):
        CompileSettings(method="adam")
    with pytest.raises(QkdInputError, match="shots"):
        CompileSettings(shots=0)
    with pytest.raises(QkdInputError, match="2x2 unitary"):
        compile_circuits(np.ones((2, 2)))


def test_backend_error_is_reported_not_raised(mocker, rng):
    b = open_backend("aer", seed=1)
    mocker.patch.object(b, "sampler", side_effect=RuntimeError("backend offline"))
    res = CompileTask(b, JobLedger.in_memory(backend=b), np.eye(2), CompileSettings(), rng).start().join(30)
    assert "backend offline" in res.error
