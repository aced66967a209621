"""Quantum detectors: fidelity quantum kernels (QSVC, one-class SVM) and a VQC.

Layers (qiskit-machine-learning style), each injected into the next:
features -> robust scaling -> PCA to N_QUBITS components (of the normal training
rows for one-class models, of all training rows for supervised ones) -> angles (x * bandwidth,
clipped to +-pi) -> ZZFeatureMap -> compute-uncompute fidelity kernel or
SamplerQNN (VQC) -> V2 sampler -> backend from qkdctl.qml.backends ("aer",
"aer:<device>", "fake:<device>", "ibm:<name>").  The model never touches a backend.

- "qsvc": an SVM on the quantum kernel, trained on labeled blocks.  Equivalent to
  qiskit-machine-learning's QSVC on its FidelityQuantumKernel, but the kernel is
  precomputed in one batched sampler job (see `_kernel_matrix`) and test blocks are
  compared only with the support vectors (the other dual coefficients are 0),
  which cuts the circuits per scored block.  Bandwidth by 3-fold cross-validation.
- "qocsvm": a one-class SVM on the quantum kernel of normal blocks.  Bandwidth by
  the kernel median heuristic (median off-diagonal kernel value nearest 1/2):
  there are no attack labels to cross-validate on.
- "vqc": a variational quantum classifier (ZZFeatureMap + RealAmplitudes, parity
  readout, COBYLA) on labeled blocks; score = log-odds of the attack class.
Shots per circuit: SHOTS; `self.shots` counts every shot submitted.
"""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import FALSE_ALARM_TARGET, ScoredDetector, check_matrix, holdout_split, training_labels
from qkdctl.detect.classical import RobustScaler

N_QUBITS = 4
SHOTS = 256
BANDWIDTHS = (0.1, 0.25, 0.6)
TRAIN_ROWS = {True: 40, False: 60}  # per class (quick, full)
VQC_ITERATIONS = {True: 40, False: 60}
KINDS = ("qsvc", "qocsvm", "vqc")


def _parity(bits: int) -> int:
    """Class read out from a measured bitstring: its parity."""
    return bin(bits).count("1") % 2


class _Projection:
    """Robust scaling then PCA to N_QUBITS components (fitted on the rows given)."""

    def __init__(self, x: np.ndarray) -> None:
        self.scaler = RobustScaler(x)
        z = self.scaler(x)
        self.mean = z.mean(axis=0)
        _, sv, vt = np.linalg.svd(z - self.mean, full_matrices=False)
        self.components = vt[:N_QUBITS]
        self.std = np.maximum(sv[:N_QUBITS] / np.sqrt(max(len(x) - 1, 1)), 1e-9)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self.scaler(x) - self.mean) @ self.components.T / self.std


class QuantumDetector(ScoredDetector):
    """Quantum-kernel or variational detector behind the Detector interface."""

    def __init__(self, kind: str, seed: int = 0, severity: str = "abort", quick: bool = False,
                 backend: str = "aer", shots: int = SHOTS) -> None:
        super().__init__(severity)
        if kind not in KINDS:
            raise QkdInputError(f"unknown quantum detector {kind!r}; known: {', '.join(KINDS)}")
        if int(shots) < 1:
            raise QkdInputError(f"shots must be >= 1, got {shots}")
        self.kind = kind
        self.name = f"quantum:{kind}"
        self.supervised = kind != "qocsvm"
        self.seed = int(seed)
        self.quick = bool(quick)
        self.backend_spec = backend
        self.shot_count = int(shots)
        self.projection: _Projection | None = None
        self.bandwidth = BANDWIDTHS[1]
        self.train_angles: np.ndarray | None = None
        self.svm = None
        self.weights: np.ndarray | None = None
        self._backend = None

    # ---- execution layer ------------------------------------------------------------
    def _sampler_and_pm(self):
        from qiskit.transpiler import generate_preset_pass_manager

        from qkdctl.qml.backends import open_backend

        if self._backend is None:
            self._backend = open_backend(self.backend_spec, seed=self.seed)
        pm = generate_preset_pass_manager(optimization_level=1, backend=self._backend.backend,
                                          seed_transpiler=self.seed)
        return self._backend.sampler(), pm

    def _feature_map(self):
        from qiskit.circuit.library import zz_feature_map

        return zz_feature_map(N_QUBITS, reps=1)

    def _kernel_matrix(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """Fidelity kernel |<phi(a_i)|phi(b_j)>|^2 estimated as P(0...0) of U(a_i) U(b_j)^dagger.

        The compute-uncompute circuit of qiskit-machine-learning's ComputeUncompute,
        transpiled once and run as one sampler PUB over all pairs (FidelityQuantumKernel
        transpiles one circuit per pair: ~60 ms each on this machine).  Symmetric
        case: upper triangle only, unit diagonal.
        """
        from qiskit.circuit import ParameterVector

        sampler, pm = self._sampler_and_pm()
        fmap = self._feature_map()
        px, py = ParameterVector("x", N_QUBITS), ParameterVector("y", N_QUBITS)
        qc = fmap.assign_parameters(list(px)).compose(fmap.assign_parameters(list(py)).inverse())
        qc.measure_all()
        isa = pm.run(qc)
        if b is None:
            i, j = np.triu_indices(len(a), 1)
            left, right = a[i], a[j]
        else:
            i, j = np.divmod(np.arange(len(a) * len(b)), len(b))
            left, right = a[i], b[j]
        if left.shape[0] == 0:
            fid = np.empty(0)
        else:
            cols = [(left if p.vector.name == "x" else right)[:, p.index] for p in isa.parameters]
            res = sampler.run([(isa, np.column_stack(cols))], shots=self.shot_count).result()[0]
            bits = next(iter(res.data.values())).array  # (pairs, shots, bytes)
            fid = np.all(bits == 0, axis=-1).mean(axis=-1)
        self.shots += self.shot_count * left.shape[0]
        if b is None:
            k = np.eye(len(a))
            k[i, j] = k[j, i] = fid
            return k
        return fid.reshape(len(a), len(b))

    def _angles(self, x: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
        bw = self.bandwidth if bandwidth is None else bandwidth
        return np.clip(self.projection(x) * bw, -np.pi, np.pi)

    # ---- training -------------------------------------------------------------------
    def _subsample(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = TRAIN_ROWS[self.quick]
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)])
        return x[idx], y[idx]

    def fit(self, x: np.ndarray, y: np.ndarray | None = None,
            false_alarm: float = FALSE_ALARM_TARGET) -> "QuantumDetector":
        """Train on a class-balanced subsample (TRAIN_ROWS per class); threshold from held-out normal rows."""
        x = check_matrix(x, "training features")
        y = training_labels(self.name, x.shape[0], y, self.supervised)
        rng = np.random.default_rng(self.seed)
        normal_idx = np.flatnonzero(y == 0)
        fit_n, cal_n = holdout_split(normal_idx.size, self.seed)
        keep = np.ones(x.shape[0], dtype=bool)
        keep[normal_idx[cal_n]] = False
        # one-class: PCA of normal rows; supervised: of all training rows (attack directions included)
        self.projection = _Projection(x[keep] if self.supervised else x[normal_idx[fit_n]])
        xt, yt = self._subsample(x[keep], y[keep], rng)
        if self.kind == "qocsvm":
            self._fit_ocsvm(xt)
        elif self.kind == "qsvc":
            self._fit_qsvc(xt, yt)
        else:
            self._fit_vqc(xt, yt)
        cal = x[normal_idx[cal_n]][: TRAIN_ROWS[self.quick]]
        self.calibrate(cal, false_alarm)
        return self

    def _fit_ocsvm(self, xt: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM

        best = None
        for bw in BANDWIDTHS:
            k = self._kernel_matrix(self._angles(xt, bw))
            med = float(np.median(k[np.triu_indices_from(k, 1)]))
            if best is None or abs(med - 0.5) < best[0]:
                best = (abs(med - 0.5), bw, k)
        _, self.bandwidth, k = best
        self.svm = OneClassSVM(kernel="precomputed", nu=0.05).fit(k)
        self._keep_support(xt)

    def _fit_qsvc(self, xt: np.ndarray, yt: np.ndarray) -> None:
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        folds = list(StratifiedKFold(3, shuffle=True, random_state=self.seed).split(xt, yt))
        best = None
        for bw in BANDWIDTHS:
            k = self._kernel_matrix(self._angles(xt, bw))
            acc = np.mean([np.mean(SVC(kernel="precomputed", C=10.0).fit(k[np.ix_(tr, tr)], yt[tr])
                                   .predict(k[np.ix_(te, tr)]) == yt[te]) for tr, te in folds])
            if best is None or acc > best[0]:
                best = (acc, bw, k)
        _, self.bandwidth, k = best
        self.svm = SVC(kernel="precomputed", C=10.0).fit(k, yt)
        self._keep_support(xt)

    def _keep_support(self, xt: np.ndarray) -> None:
        """Keep the training angles and the support vectors' indices (scoring compares with those only)."""
        self.train_angles = self._angles(xt)
        self.support = np.asarray(self.svm.support_, dtype=np.int64)

    def _qnn(self):
        from qiskit.circuit.library import real_amplitudes
        from qiskit_machine_learning.neural_networks import SamplerQNN

        fmap = self._feature_map()
        ansatz = real_amplitudes(N_QUBITS, reps=2)
        circuit = fmap.compose(ansatz)
        sampler, pm = self._sampler_and_pm()
        return SamplerQNN(sampler=sampler, circuit=circuit, input_params=fmap.parameters,
                          weight_params=ansatz.parameters, interpret=_parity, output_shape=2, pass_manager=pm)

    def _fit_vqc(self, xt: np.ndarray, yt: np.ndarray) -> None:
        from qiskit_machine_learning.algorithms.classifiers import NeuralNetworkClassifier
        from qiskit_machine_learning.optimizers import COBYLA

        qnn = self._qnn()
        init = np.random.default_rng(self.seed).uniform(-0.1, 0.1, qnn.num_weights)
        clf = NeuralNetworkClassifier(qnn, optimizer=COBYLA(maxiter=VQC_ITERATIONS[self.quick]),
                                      one_hot=True, initial_point=init)
        onehot = np.eye(2)[yt]
        clf.fit(self._angles(xt), onehot)
        self.weights = np.asarray(clf.weights, dtype=np.float64)
        self.shots += self.shot_count * len(xt) * VQC_ITERATIONS[self.quick]

    # ---- scoring --------------------------------------------------------------------
    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.projection is None:
            raise QkdInputError(f"{self.name}: not trained")
        a = self._angles(check_matrix(x))
        if self.kind == "vqc":
            p = self._qnn().forward(a, self.weights)[:, 1]
            self.shots += self.shot_count * len(a)
            p = np.clip(p, 1e-4, 1 - 1e-4)
            return np.log(p / (1 - p))
        k = np.zeros((len(a), len(self.train_angles)))
        k[:, self.support] = self._kernel_matrix(a, self.train_angles[self.support])
        d = self.svm.decision_function(k)
        return -d if self.kind == "qocsvm" else d

    def state(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "quick": self.quick, "backend": self.backend_spec,
                "shots": self.shot_count, "projection": self.projection, "bandwidth": self.bandwidth,
                "train_angles": self.train_angles, "support": getattr(self, "support", None),
                "svm": self.svm, "weights": self.weights}

    @classmethod
    def from_state(cls, state: dict) -> "QuantumDetector":
        det = cls(state["kind"], seed=state["seed"], quick=state["quick"], backend=state["backend"],
                  shots=state["shots"])
        det.projection = state["projection"]
        det.bandwidth = state["bandwidth"]
        det.train_angles = state["train_angles"]
        det.support = state["support"]
        det.svm = state["svm"]
        det.weights = state["weights"]
        return det
