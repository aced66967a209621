"""Hybrid quantum-classical GAN on normal-operation telemetry.

Generator (quantum): latent angles z ~ U(-pi, pi)^N_QUBITS enter as RY rotations,
then a trainable RealAmplitudes layer (reps 2); the sampled <Z_i> of each qubit
(estimated from `shots` shots, one sampler PUB per batch on a qkdctl.qml
backend) times OUTPUT_SCALE is a point in the detectors' PCA space
(qkdctl.detect.quantum's projection of the features).
Discriminator (classical): a small scikit-learn MLP, real normal blocks vs
generated ones.  Training alternates one discriminator pass with one SPSA step of
the generator on -mean log D(G(z)) (two sampler jobs per step).

Uses: `generate(n)` augments scarce normal data; the detector score is
-log D(x) ("how fake does this block look"), thresholded on held-out normal
blocks like every detector.
"""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import FALSE_ALARM_TARGET, ScoredDetector, check_matrix, holdout_split
from qkdctl.detect.quantum import N_QUBITS, _Projection

OUTPUT_SCALE = 3.0  # PCA units (standard deviations) of a fully polarized qubit
GAN_STEPS = {True: 12, False: 40}
BATCH = 32
SHOTS = 128


class QuantumGanDetector(ScoredDetector):
    """Discriminator of a quantum-generator GAN as an anomaly detector (one-class)."""

    name = "quantum:gan"

    def __init__(self, seed: int = 0, severity: str = "abort", quick: bool = False, backend: str = "aer",
                 shots: int = SHOTS) -> None:
        super().__init__(severity)
        if int(shots) < 1:
            raise QkdInputError(f"shots must be >= 1, got {shots}")
        self.seed = int(seed)
        self.quick = bool(quick)
        self.backend_spec = backend
        self.shot_count = int(shots)
        self.projection: _Projection | None = None
        self.theta: np.ndarray | None = None
        self.disc = None
        self._backend = None
        self._isa = None

    def _circuit(self):
        from qiskit.circuit import ParameterVector, QuantumCircuit
        from qiskit.circuit.library import real_amplitudes
        from qiskit.transpiler import generate_preset_pass_manager

        from qkdctl.qml.backends import open_backend

        if self._isa is None:
            self._backend = open_backend(self.backend_spec, seed=self.seed)
            z = ParameterVector("z", N_QUBITS)
            qc = QuantumCircuit(N_QUBITS)
            for q in range(N_QUBITS):
                qc.ry(z[q], q)
            ansatz = real_amplitudes(N_QUBITS, reps=2)
            qc.compose(ansatz, inplace=True)
            qc.measure_all()
            pm = generate_preset_pass_manager(optimization_level=1, backend=self._backend.backend,
                                              seed_transpiler=self.seed)
            self._isa = pm.run(qc)
            self._n_theta = ansatz.num_parameters
        return self._isa

    def _sample(self, theta: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Generated PCA points (float[batch, N_QUBITS]) for latent angles."""
        isa = self._circuit()
        cols = [latent[:, p.index] if p.name.startswith("z") else np.full(len(latent), theta[p.index])
                for p in isa.parameters]
        res = self._backend.sampler().run([(isa, np.column_stack(cols))], shots=self.shot_count).result()[0]
        bits = np.unpackbits(next(iter(res.data.values())).array, axis=-1)[..., -N_QUBITS:]  # (batch, shots, q)
        self.shots += self.shot_count * len(latent)
        z_exp = 1.0 - 2.0 * bits.mean(axis=1)  # <Z> per qubit; bit order: last column = qubit 0
        return OUTPUT_SCALE * z_exp[:, ::-1]

    def generate(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n generated points in PCA space (for augmenting normal training data)."""
        if self.theta is None:
            raise QkdInputError(f"{self.name}: not trained")
        return self._sample(self.theta, rng.uniform(-np.pi, np.pi, (int(n), N_QUBITS)))

    def _d_fake(self, pts: np.ndarray) -> np.ndarray:
        return np.clip(self.disc.predict_proba(pts)[:, 0], 1e-4, 1 - 1e-4)  # class 0 = generated

    def fit(self, x: np.ndarray, y: None = None, false_alarm: float = FALSE_ALARM_TARGET) -> "QuantumGanDetector":
        """Adversarial training on normal feature rows; threshold from held-out normal rows."""
        from sklearn.neural_network import MLPClassifier

        x = check_matrix(x, "normal features")
        fit_n, cal_n = holdout_split(len(x), self.seed)
        rng = np.random.default_rng(self.seed)
        self.projection = _Projection(x[fit_n])
        real = self.projection(x[fit_n])
        self._circuit()
        self.theta = rng.uniform(-0.1, 0.1, self._n_theta)
        self.disc = MLPClassifier(hidden_layer_sizes=(16,), random_state=self.seed, max_iter=1,
                                  warm_start=True, learning_rate_init=0.01)
        for step in range(GAN_STEPS[self.quick]):
            batch_real = real[rng.integers(0, len(real), BATCH)]
            latent = rng.uniform(-np.pi, np.pi, (BATCH, N_QUBITS))
            fake = self._sample(self.theta, latent)
            self.disc.partial_fit(np.vstack([fake, batch_real]), np.r_[np.zeros(BATCH), np.ones(BATCH)],
                                  classes=[0, 1])
            delta = rng.choice([-1.0, 1.0], self._n_theta)
            c = 0.2 / (step + 1) ** 0.101
            a = 0.3 / (step + 1) ** 0.602
            lp = -np.mean(np.log(1 - self._d_fake(self._sample(self.theta + c * delta, latent))))
            lm = -np.mean(np.log(1 - self._d_fake(self._sample(self.theta - c * delta, latent))))
            self.theta = self.theta - a * (lp - lm) / (2 * c) * delta
        self.calibrate(x[cal_n], false_alarm)
        return self

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """-log D(real | x): large when the discriminator finds the block unlike normal data."""
        if self.disc is None:
            raise QkdInputError(f"{self.name}: not trained")
        p_real = np.clip(self.disc.predict_proba(self.projection(check_matrix(x)))[:, 1], 1e-6, 1.0)
        return -np.log(p_real)

    def state(self) -> dict:
        return {"seed": self.seed, "quick": self.quick, "backend": self.backend_spec, "shots": self.shot_count,
                "projection": self.projection, "theta": self.theta, "disc": self.disc}

    @classmethod
    def from_state(cls, state: dict) -> "QuantumGanDetector":
        det = cls(seed=state["seed"], quick=state["quick"], backend=state["backend"], shots=state["shots"])
        det.projection, det.theta, det.disc = state["projection"], state["theta"], state["disc"]
        return det
