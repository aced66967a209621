"""Quantum-assisted compiling of a polarization channel's inverse (Khatri et al., Quantum 3, 140, 2019).

Given the learned channel rotation T (2x2 SU(2), Jones = qubit basis: H = |0>,
D = |+>), a one-qubit variational compensator V(theta) = RZ(t2) RY(t1) RX(t0)
(Tait-Bryan angles: non-singular around theta = 0, where a compensator that is
already nearly right starts; RZ-RY-RZ is gimbal-locked there) is trained so that
H and D sent through T then V are measured correctly in Z and X.  The cost is
QBER_Z + QBER_X estimated from sampled counts of two circuits, both run as one
parameter sweep per sampler job:

  H test: |0> -> T -> V(theta) -> measure Z      (QBER_Z = P(1))
  D test: |0> -H-> T -> V(theta) -H-> measure Z  (QBER_X = P(1))

Optimizers are data (`CompileSettings.method`): "spsa" (two-point simultaneous
perturbation; theta, theta +- c_k Delta in one job per iteration), "cobyla"
(scipy, one job per cost evaluation) and "pshift" (gradient descent with the
parameter-shift gradient run on the backend: each theta_i sits in one rotation
exp(-i theta_i P / 2), so dC/dtheta_i = (C(theta + pi/2 e_i) - C(theta - pi/2 e_i)) / 2
exactly for this expectation-value cost; theta and the 6 shifted points in one job).

A `CompileTask` runs one training in a background thread, submitting every job
through the JobLedger; the block loop only polls it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.qml.ledger import FINAL, JobLedger

METHODS = ("spsa", "cobyla", "pshift")
N_PARAMS = 3


@dataclass(frozen=True)
class CompileSettings:
    """One optimizer variant and its budget.

    shots: per circuit; max_iter: iterations (spsa, pshift) or cost evaluations
    (cobyla); target_cost: spsa and pshift stop once the measured cost at theta
    is at or below it;
    spsa_a, spsa_c: SPSA gains a_k = a / (k + 1 + A)^0.602, c_k = c / (k + 1)^0.101
    (Spall 1998, A = max_iter / 10); pshift_lr: gradient-descent step (rad per unit
    cost gradient); cobyla_rhobeg: COBYLA's initial step (rad); job_timeout_s:
    longest wait for one job (s).
    """

    method: str = "pshift"
    shots: int = 1024
    max_iter: int = 30
    target_cost: float = 0.0
    spsa_a: float = 0.6
    spsa_c: float = 0.15
    pshift_lr: float = 0.9
    cobyla_rhobeg: float = 0.4
    job_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise QkdInputError(f"compile method must be one of {METHODS}, got {self.method!r}")
        if self.shots < 1:
            raise QkdInputError(f"shots must be >= 1, got {self.shots}")
        if self.max_iter < 1:
            raise QkdInputError(f"max_iter must be >= 1, got {self.max_iter}")
        if not self.job_timeout_s > 0:
            raise QkdInputError(f"job_timeout_s must be > 0, got {self.job_timeout_s}")


def ansatz_unitary(theta: np.ndarray) -> np.ndarray:
    """V(theta) = RZ(t2) RY(t1) RX(t0) as a 2x2 matrix."""
    t0, t1, t2 = (float(t) for t in theta)
    rx = np.array([[np.cos(t0 / 2), -1j * np.sin(t0 / 2)], [-1j * np.sin(t0 / 2), np.cos(t0 / 2)]])
    ry = np.array([[np.cos(t1 / 2), -np.sin(t1 / 2)], [np.sin(t1 / 2), np.cos(t1 / 2)]], dtype=complex)
    rz = np.diag([np.exp(-0.5j * t2), np.exp(0.5j * t2)])
    return rz @ ry @ rx


def exact_cost(channel: np.ndarray, theta: np.ndarray) -> float:
    """Noiseless QBER_Z + QBER_X of V(theta) after `channel` (the cost without shot noise)."""
    w = ansatz_unitary(theta) @ np.asarray(channel, dtype=complex)
    e_z = abs(w[1, 0]) ** 2
    plus = np.array([1.0, 1.0]) / np.sqrt(2)
    e_x = abs(np.array([1.0, -1.0]) @ w @ plus) ** 2 / 2.0
    return float(e_z + e_x)


def compile_circuits(channel: np.ndarray):
    """(H-test circuit, D-test circuit, parameter vector) for the learned `channel`."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.circuit.library import UnitaryGate

    u = np.asarray(channel, dtype=complex)
    if u.shape != (2, 2) or not np.allclose(u.conj().T @ u, np.eye(2), atol=1e-6):
        raise QkdInputError(f"channel must be a 2x2 unitary, got {u.shape} {'non-unitary' if u.shape == (2, 2) else ''}")
    theta = ParameterVector("theta", N_PARAMS)
    out = []
    for prep_d in (False, True):
        qc = QuantumCircuit(1, name="compile_D" if prep_d else "compile_H")
        if prep_d:
            qc.h(0)
        qc.append(UnitaryGate(u, label="channel"), [0])
        qc.rx(theta[0], 0)
        qc.ry(theta[1], 0)
        qc.rz(theta[2], 0)
        if prep_d:
            qc.h(0)
        qc.measure_all()
        out.append(qc)
    return out[0], out[1], theta


def _p_one(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return counts.get("1", 0) / total if total else float("nan")


@dataclass
class CompileResult:
    """Outcome of one training: theta (rad), last measured cost, jobs/shots spent, error if any."""

    theta: np.ndarray
    cost: float
    iterations: int = 0
    jobs: list = field(default_factory=list)
    shots: int = 0
    error: str = ""
    cost_trace: list = field(default_factory=list)


class CompileTask:
    """One training run of V(theta) against `channel`, in a background thread.

    backend: QuantumBackend; ledger: where every job is recorded; rng: SPSA
    perturbations; theta0: starting angles (rad); tag: ledger tag of the jobs.
    """

    def __init__(self, backend, ledger: JobLedger, channel: np.ndarray, settings: CompileSettings,
                 rng: np.random.Generator, theta0: np.ndarray | None = None, tag: str = "qml-compile") -> None:
        self.backend = backend
        self.ledger = ledger
        self.channel = np.asarray(channel, dtype=complex)
        self.settings = settings
        self.rng = rng
        self.theta0 = np.zeros(N_PARAMS) if theta0 is None else np.asarray(theta0, dtype=float)
        self.tag = tag
        self.result = CompileResult(self.theta0.copy(), float("nan"))
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._current_job: str | None = None
        self._thread = threading.Thread(target=self._run, name="qml-compile", daemon=True)

    def start(self) -> "CompileTask":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def done(self) -> bool:
        """True once the training thread has finished (result or error)."""
        return not self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> CompileResult:
        """Wait for the training (tests, benchmarks) and return its result."""
        self._thread.join(timeout_s)
        return self.result

    def cancel(self) -> None:
        """Stop after the job in flight and cancel that job in the ledger."""
        self._stop.set()
        if self._current_job is not None:
            self.ledger.cancel(self._current_job)

    def _costs(self, thetas: np.ndarray) -> np.ndarray:
        """Measured QBER_Z + QBER_X at each row of `thetas`, from one sampler job."""
        if self._stop.is_set():
            raise QkdInputError("training cancelled")
        s = self.settings
        values = np.ascontiguousarray(thetas, dtype=float).reshape(-1, N_PARAMS)
        h = self.ledger.submit(self._sampler, [(self._isa[0], values), (self._isa[1], values)], shots=s.shots,
                               tag=self.tag, payload={"method": s.method, "theta": values.tolist()})
        self._current_job = h.job_id
        self.result.jobs.append(h.job_id)
        self.result.shots += h.shots * h.circuits
        state = self.ledger.wait(h.job_id, s.job_timeout_s)
        if state not in FINAL:
            self.ledger.cancel(h.job_id)
            raise QkdInputError(f"job {h.job_id} timed out after {s.job_timeout_s} s (status {state})")
        counts = self.ledger.result(h.job_id)
        self._current_job = None
        e_z = np.array([_p_one(c) for c in counts[0]["meas"]])
        e_x = np.array([_p_one(c) for c in counts[1]["meas"]])
        return e_z + e_x

    def _run(self) -> None:
        try:
            h_qc, d_qc, _ = compile_circuits(self.channel)
            self._isa = self.backend.isa([h_qc, d_qc])
            self._sampler = self.backend.sampler()
            {"spsa": self._spsa, "cobyla": self._cobyla, "pshift": self._pshift}[self.settings.method]()
        except Exception as exc:  # backend errors, timeouts: reported, never raised into the block loop
            self.result.error = f"{type(exc).__name__}: {exc}"

    def _record(self, theta: np.ndarray, cost: float) -> bool:
        """Keep theta and its cost; True when the target cost is reached."""
        self.result.theta = np.array(theta, dtype=float)
        self.result.cost = float(cost)
        self.result.cost_trace.append(float(cost))
        self.result.iterations += 1
        return cost <= self.settings.target_cost

    def _spsa(self) -> None:
        s = self.settings
        theta = self.theta0.copy()
        big_a = s.max_iter / 10.0
        for k in range(s.max_iter):
            a_k = s.spsa_a / (k + 1 + big_a) ** 0.602
            c_k = s.spsa_c / (k + 1) ** 0.101
            delta = self.rng.choice([-1.0, 1.0], size=N_PARAMS)
            c0, cp, cm = self._costs(np.stack([theta, theta + c_k * delta, theta - c_k * delta]))
            if self._record(theta, c0):
                return
            theta = theta - a_k * (cp - cm) / (2.0 * c_k) * delta
        self._record(theta, self._costs(theta[None, :])[0])

    def _pshift(self) -> None:
        s = self.settings
        theta = self.theta0.copy()
        shifts = 0.5 * np.pi * np.eye(N_PARAMS)
        for _ in range(s.max_iter):
            c = self._costs(np.vstack([theta[None, :], theta + shifts, theta - shifts]))
            if self._record(theta, c[0]):
                return
            grad = 0.5 * (c[1:1 + N_PARAMS] - c[1 + N_PARAMS:])
            theta = theta - s.pshift_lr * grad
        self._record(theta, self._costs(theta[None, :])[0])

    def _cobyla(self) -> None:
        from scipy.optimize import minimize

        s = self.settings

        def fun(theta: np.ndarray) -> float:
            c = float(self._costs(np.asarray(theta)[None, :])[0])
            self._record(theta, c)
            return c

        sol = minimize(fun, self.theta0, method="COBYLA",
                       options={"maxiter": s.max_iter, "rhobeg": s.cobyla_rhobeg})
        self.result.theta = np.asarray(sol.x, dtype=float)
        self.result.cost = float(sol.fun)
