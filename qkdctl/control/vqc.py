"""Variational-quantum-circuit control policy (Born-rule policy, Jerbi et al., NeurIPS 2021).

One qubit per binary decision of the ActionSpace (4 qubits, 16 actions).  Layer l:
RY(theta) RZ(theta) on every qubit, then data re-uploading: qubit q rotates by
lambda * x_j for each feature j of its group (alternating RY, RZ), then a CZ ring.
A final RY(theta) layer, then every qubit is measured: the bit string is the action
(bit j = qubit j = axis j), so p(a | x) is estimated from `shots` samples.

Groups (features of qkdctl.control.features): qubit 0, block length <- drift
indicators (2, 3, 1, 9); qubit 1, method <- channel and reconciliation (8, 7, 5, 6);
qubit 2, gate <- QBER, rate, gate, abort (0, 4, 10, 11); qubit 3, basis bias <- block
length, rate, QBER_X, drift (9, 4, 1, 2: the X test sample's size and need).  The encoding angles
lambda * x are computed here and bound as circuit parameters, so one ISA circuit
is transpiled once and run as one parameter sweep per call (one sampler job per
batch of states, through the JobLedger).  Training: SPSA in qkdctl.control.rollout.
"""

from __future__ import annotations

import numpy as np

from qkdctl.control.actions import ActionSpace
from qkdctl.control.policy import Policy, check_features
from qkdctl.core.errors import QkdInputError
from qkdctl.qml.ledger import FINAL, JobLedger

GROUPS = ((2, 3, 1, 9), (8, 7, 5, 6), (0, 4, 10, 11), (9, 4, 1, 2))


class VqcPolicy(Policy):
    """Born-rule policy of a parameterized circuit run on `backend` (qkdctl.qml.backends).

    layers: re-uploading layers; shots: samples per state; job_timeout_s: longest wait
    for one sampler job; ledger: where jobs are recorded (in-memory one by default).
    Counters `circuits` and `shots_used` account for the quantum work submitted.
    """

    kind = "vqc"

    def __init__(self, space: ActionSpace, backend, *, layers: int = 2, shots: int = 128,
                 job_timeout_s: float = 120.0, ledger: JobLedger | None = None, training: dict | None = None) -> None:
        super().__init__(space, training)
        if space.n_axes != len(GROUPS):
            raise QkdInputError(f"VQC policy is built for {len(GROUPS)} binary axes, space has {space.n_axes}")
        if int(layers) < 1 or int(shots) < 1:
            raise QkdInputError(f"VQC policy needs layers >= 1 and shots >= 1, got {layers}, {shots}")
        self.backend = backend
        self.layers = int(layers)
        self.shots = int(shots)
        self.job_timeout_s = float(job_timeout_s)
        self.ledger = ledger if ledger is not None else JobLedger.in_memory(backend=backend)
        n_q = space.n_axes
        self.n_theta = self.layers * 2 * n_q + n_q
        self.n_lambda = self.layers * sum(len(g) for g in GROUPS)
        self.theta = np.zeros(self.n_theta)
        self.lam = np.ones(self.n_lambda)
        self.circuits = 0
        self.shots_used = 0
        self._isa = None
        self._sampler = None
        self._order: list[tuple[str, int]] = []

    def options(self) -> dict:
        return {"layers": self.layers, "shots": self.shots, "job_timeout_s": self.job_timeout_s}

    def get_params(self) -> np.ndarray:
        return np.concatenate([self.theta, self.lam])

    def set_params(self, theta: np.ndarray) -> None:
        v = np.asarray(theta, dtype=np.float64).ravel()
        if v.size != self.n_theta + self.n_lambda:
            raise QkdInputError(f"VQC policy has {self.n_theta + self.n_lambda} parameters, got {v.size}")
        self.theta, self.lam = v[: self.n_theta].copy(), v[self.n_theta:].copy()

    def circuit(self):
        """The parameterized circuit: parameters 'w' (variational) and 'a' (encoding angles)."""
        from qiskit import QuantumCircuit
        from qiskit.circuit import ParameterVector

        n_q = self.space.n_axes
        w = ParameterVector("w", self.n_theta)
        a = ParameterVector("a", self.n_lambda)
        qc = QuantumCircuit(n_q, name="control_policy")
        iw = ia = 0
        for _ in range(self.layers):
            for q in range(n_q):
                qc.ry(w[iw], q)
                qc.rz(w[iw + 1], q)
                iw += 2
            for q, group in enumerate(GROUPS):
                for k, _j in enumerate(group):
                    (qc.ry if k % 2 == 0 else qc.rz)(a[ia], q)
                    ia += 1
            for q in range(n_q):
                qc.cz(q, (q + 1) % n_q)
        for q in range(n_q):
            qc.ry(w[iw], q)
            iw += 1
        qc.measure_all()
        return qc

    def _prepare(self) -> None:
        if self._isa is not None:
            return
        (self._isa,) = self.backend.isa([self.circuit()])
        self._sampler = self.backend.sampler()
        # parameter order of the ISA circuit -> ('w' | 'a', index)
        self._order = [(p.vector.name, p.index) for p in self._isa.parameters]

    def probs(self, features: np.ndarray) -> np.ndarray:
        x = check_features(features)
        return self.probs_with(x, np.tile(self.get_params(), (x.shape[0], 1)))

    def probs_with(self, features: np.ndarray, params: np.ndarray) -> np.ndarray:
        """(N, n_actions) probabilities, row i with its own parameter vector params[i]
        (SPSA runs its two perturbed policies in the same sampler job)."""
        x = check_features(features)
        pr = np.asarray(params, dtype=np.float64)
        if pr.shape != (x.shape[0], self.n_theta + self.n_lambda):
            raise QkdInputError(f"VQC parameters must have shape {(x.shape[0], self.n_theta + self.n_lambda)}, "
                                f"got {pr.shape}")
        self._prepare()
        cols = [j for _ in range(self.layers) for g in GROUPS for j in g]
        enc = x[:, cols] * pr[:, self.n_theta:]
        values = np.empty((x.shape[0], len(self._order)))
        for c, (name, i) in enumerate(self._order):
            values[:, c] = pr[:, i] if name == "w" else enc[:, i]
        h = self.ledger.submit(self._sampler, [(self._isa, values)], shots=self.shots, tag="control-vqc")
        state = self.ledger.wait(h.job_id, self.job_timeout_s)
        if state not in FINAL:
            self.ledger.cancel(h.job_id)
            raise QkdInputError(f"VQC policy: job {h.job_id} not done after {self.job_timeout_s} s (status {state})")
        counts = self.ledger.result(h.job_id)[0]["meas"]
        self.circuits += h.circuits
        self.shots_used += h.shots * h.circuits
        p = np.zeros((x.shape[0], self.space.n_actions))
        for row, c in enumerate(counts):
            for bits, n in c.items():
                p[row, int(bits, 2)] += n
        return p / p.sum(axis=1, keepdims=True)
