"""Quantum-kernel ridge regression for the learned decoy predictor (Wang & Lo, PRA 100, 062334 (2019)).

Same interface as the classical MLP predictor (qkdctl.tune.decoy_predictor:
`fit(features, targets)`, `predict(features) -> list[DecoyChoice]`); only the model
behind it changes: kernel ridge regression (scikit-learn KernelRidge on a
precomputed Gram matrix) with the fidelity kernel k(x, x') = |<phi(x)|phi(x')>|^2
of a ZZ feature map on 5 qubits (one per link feature, standardised and scaled by
`bandwidth`: quantum kernels concentrate without it, Shaydulin & Wild, PRA 106,
042407 (2022)).

The kernel is injected (model -> kernel -> fidelity -> sampler -> backend):
`statevector_kernel` computes it exactly (qiskit-machine-learning's
FidelityStatevectorKernel), `backend_kernel(backend)` estimates each entry from
sampled compute-uncompute circuits on a QuantumBackend (aer, fake, ibm), one
circuit per pair of points.
"""

from __future__ import annotations

import numpy as np
from sklearn.kernel_ridge import KernelRidge

from qkdctl.core.errors import QkdInputError
from qkdctl.tune.decoy import ProtocolConstants
from qkdctl.tune.decoy_predictor import N_FEATURES, DecoyPredictor


def feature_map(reps: int = 1):
    """ZZ feature map on N_FEATURES qubits (qiskit.circuit.library.zz_feature_map)."""
    from qiskit.circuit.library import zz_feature_map

    if reps < 1:
        raise QkdInputError(f"feature map reps must be >= 1, got {reps}")
    return zz_feature_map(N_FEATURES, reps=reps)


def statevector_kernel(reps: int = 1):
    """Exact fidelity kernel of the ZZ feature map (statevector simulation)."""
    from qiskit_machine_learning.kernels import FidelityStatevectorKernel

    # auto_clear_cache=False keeps the training points' statevectors between predictions
    return FidelityStatevectorKernel(feature_map=feature_map(reps), auto_clear_cache=False)


def backend_kernel(backend, reps: int = 1, shots: int = 1024):
    """Fidelity kernel estimated with `shots` per entry on a QuantumBackend (compute-uncompute circuits)."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_machine_learning.kernels import FidelityQuantumKernel
    from qiskit_machine_learning.state_fidelities import ComputeUncompute

    if shots < 1:
        raise QkdInputError(f"shots must be >= 1, got {shots}")
    pm = generate_preset_pass_manager(optimization_level=1, backend=backend.backend, seed_transpiler=backend.seed)
    fidelity = ComputeUncompute(sampler=backend.sampler(), options={"shots": int(shots)}, pass_manager=pm)
    return FidelityQuantumKernel(feature_map=feature_map(reps), fidelity=fidelity)


class QuantumKernelDecoyPredictor(DecoyPredictor):
    """DecoyPredictor whose model is quantum-kernel ridge regression.

    kernel: an object with evaluate(x_vec, y_vec=None) -> Gram matrix (default: the
    exact statevector kernel); bandwidth: scale of the standardised features before
    the feature map (rad per standard deviation); alpha: ridge regularisation.
    Defaults (reps 1, bandwidth 0.03, alpha 1e-5) were chosen on validation links
    (sample_figures seed 2024; `bench tune` scores on seed 99); larger bandwidths
    lose accuracy fast (docs/qml.md).  At this
    bandwidth the kernel is close to a smooth classical kernel of the features.
    """

    def __init__(self, kernel=None, bandwidth: float = 0.03, alpha: float = 1e-5,
                 constants: ProtocolConstants = ProtocolConstants()) -> None:
        super().__init__(constants=constants)
        if not bandwidth > 0 or not alpha > 0:
            raise QkdInputError(f"bandwidth and alpha must be > 0, got {bandwidth}, {alpha}")
        self.kernel = kernel if kernel is not None else statevector_kernel()
        self.bandwidth = float(bandwidth)
        self.alpha = float(alpha)
        self._x_train: np.ndarray | None = None

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self._x_train = self.bandwidth * x
        gram = self.kernel.evaluate(self._x_train)
        self._model = KernelRidge(alpha=self.alpha, kernel="precomputed").fit(gram, y)

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        gram = self.kernel.evaluate(self.bandwidth * x, self._x_train)
        return np.asarray(self._model.predict(gram)).reshape(len(x), -1)
