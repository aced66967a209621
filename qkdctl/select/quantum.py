"""Quantum-kernel error model: fidelity kernel of a ZZ-type feature map, SVM on top.

Layers are injected (model -> kernel -> state backend): the model asks a
`StateBackend` for the statevectors of its feature-map circuits and never touches
a simulator itself; `AerStateBackend` runs them on qiskit-aer (statevector method).
The kernel is k(x, y) = |<phi(x)|phi(y)>|^2 on two qubits fed with the public
features dt_ps and log10(since_any_slots), each scaled to [0, pi].

To keep circuit counts small the model is evaluated on a grid of feature cells
(GRID_DT x GRID_GAP cell centres) once after training; events look up their
cell's score.  Training uses N_SUPPORT events, half of them errors (drawn from
the passed Generator).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from qkdctl.core.errors import QkdInputError

GRID_DT = 24
GRID_GAP = 12
N_SUPPORT = 600
FEATURE_REPS = 2
FEATURE_SCALE = 0.2
"""Angles span [0, FEATURE_SCALE * pi]: the kernel bandwidth (smaller = smoother)."""


class StateBackend(Protocol):
    """Runs circuits and returns their final statevectors (complex [n, 2**qubits])."""

    def statevectors(self, circuits: list) -> np.ndarray:
        """Statevectors of the circuits, in order."""


class AerStateBackend:
    """StateBackend on qiskit-aer's statevector simulator."""

    def __init__(self) -> None:
        from qiskit_aer import AerSimulator

        self._sim = AerSimulator(method="statevector")

    def statevectors(self, circuits: list) -> np.ndarray:
        from qiskit import transpile

        saved = []
        for c in circuits:
            c = c.copy()
            c.save_statevector()
            saved.append(c)
        result = self._sim.run(transpile(saved, self._sim)).result()
        return np.array([np.asarray(result.get_statevector(i)) for i in range(len(saved))])


def feature_map(angles: np.ndarray):
    """Two-qubit ZZ feature map (H, RZ(2 x_i), CX-RZ(2 (pi - x0)(pi - x1))-CX), FEATURE_REPS times."""
    from qiskit import QuantumCircuit

    x0, x1 = float(angles[0]), float(angles[1])
    qc = QuantumCircuit(2)
    for _ in range(FEATURE_REPS):
        qc.h([0, 1])
        qc.rz(2.0 * x0, 0)
        qc.rz(2.0 * x1, 1)
        qc.cx(0, 1)
        qc.rz(2.0 * (np.pi - x0) * (np.pi - x1), 1)
        qc.cx(0, 1)
    return qc


class QuantumKernelModel:
    """ErrorModel: SVM with a quantum fidelity kernel over (dt_ps, log10 gap)."""

    def __init__(self, backend: StateBackend, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise QkdInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.backend = backend
        self.rng = rng
        self.circuits_run = 0
        self._lo = self._hi = None
        self._cell_score: np.ndarray | None = None

    def _angles(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, :2] - self._lo) / (self._hi - self._lo)
        return FEATURE_SCALE * np.pi * np.clip(z, 0.0, 1.0)

    def _states(self, angles: np.ndarray) -> np.ndarray:
        self.circuits_run += len(angles)
        return self.backend.statevectors([feature_map(a) for a in angles])

    def fit(self, x: np.ndarray, wrong: np.ndarray) -> "QuantumKernelModel":
        from sklearn.svm import SVC

        wrong = np.asarray(wrong, dtype=bool)
        bad, good = np.flatnonzero(wrong), np.flatnonzero(~wrong)
        if bad.size == 0 or good.size == 0:
            raise QkdInputError("quantum model: training blocks hold no errors (or only errors)")
        self._lo = x[:, :2].min(axis=0)
        self._hi = np.maximum(x[:, :2].max(axis=0), self._lo + 1e-9)
        k = N_SUPPORT // 2
        pick = np.concatenate([self.rng.choice(bad, min(k, bad.size), replace=False),
                               self.rng.choice(good, min(k, good.size), replace=False)])
        s_train = self._states(self._angles(x[pick]))
        svm = SVC(kernel="precomputed", class_weight="balanced")
        svm.fit(np.abs(s_train.conj() @ s_train.T) ** 2, wrong[pick].astype(int))
        gd = (np.arange(GRID_DT) + 0.5) / GRID_DT
        gg = (np.arange(GRID_GAP) + 0.5) / GRID_GAP
        cells = FEATURE_SCALE * np.pi * np.array([(a, b) for a in gd for b in gg])
        s_cells = self._states(cells)
        self._cell_score = svm.decision_function(np.abs(s_cells.conj() @ s_train.T) ** 2).reshape(GRID_DT, GRID_GAP)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self._cell_score is None:
            raise QkdInputError("quantum model: score() before fit()")
        a = self._angles(x) / (FEATURE_SCALE * np.pi)
        i = np.minimum((a[:, 0] * GRID_DT).astype(np.int64), GRID_DT - 1)
        j = np.minimum((a[:, 1] * GRID_GAP).astype(np.int64), GRID_GAP - 1)
        return self._cell_score[i, j]
