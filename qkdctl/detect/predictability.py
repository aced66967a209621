"""Predictability audit of a bit source: can a model guess the next bit better than 1/2?

Each model sees the previous LAGS bits and predicts the next one; it is trained
on the first part of the sequence and scored on the rest.  The figure is the
advantage = accuracy - 1/2 on the held-out bits with a two-sided Hoeffding
confidence interval at 1 - delta; a source is flagged predictable when the
interval's lower end is above 0 for any model (the deltas are split among the
models, Bonferroni).

Models: "markov" (order-LAGS frequency table: the majority next bit per context),
"logreg" (logistic regression on the lagged bits, scikit-learn), "qkernel" (an
SVM on a fidelity quantum kernel of the lag pattern: ZZ feature map on LAGS
qubits, sampled on a qkdctl.qml backend; the 2^LAGS patterns need only
2^LAGS (2^LAGS - 1) / 2 kernel circuits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qkdctl.core.errors import QkdInputError

LAGS = 4
MODELS = ("markov", "logreg", "qkernel")
TRAIN_FRACTION = 0.5


@dataclass(frozen=True)
class Advantage:
    """One model's result: accuracy on n_test bits, advantage over 1/2 with its interval."""

    model: str
    n_test: int
    accuracy: float
    advantage: float
    low: float
    high: float
    shots: int = 0

    @property
    def predictable(self) -> bool:
        """True when the advantage's lower bound is above 0."""
        return self.low > 0


def lagged(bits: np.ndarray, lags: int = LAGS) -> tuple[np.ndarray, np.ndarray]:
    """(context codes int64[n - lags] with the oldest bit most significant, next bits)."""
    b = np.asarray(bits, dtype=np.int64)
    code = np.zeros(b.size - lags, dtype=np.int64)
    for k in range(lags):
        code = (code << 1) | b[k:b.size - lags + k]
    return code, b[lags:]


def _markov(tr_c, tr_y, te_c, lags, **_):
    ones = np.bincount(tr_c, weights=tr_y, minlength=1 << lags)
    seen = np.bincount(tr_c, minlength=1 << lags)
    guess = (2 * ones > seen).astype(np.int64)
    return guess[te_c], 0


def _bits_of(codes, lags):
    return ((codes[:, None] >> np.arange(lags - 1, -1, -1)) & 1).astype(np.float64)


def _logreg(tr_c, tr_y, te_c, lags, **_):
    from sklearn.linear_model import LogisticRegression

    if np.unique(tr_y).size < 2:
        return np.full(te_c.size, tr_y[0]), 0
    m = LogisticRegression().fit(_bits_of(tr_c, lags), tr_y)
    return m.predict(_bits_of(te_c, lags)), 0


def _qkernel(tr_c, tr_y, te_c, lags, backend="aer", seed=0, shots=256):
    from qiskit.circuit.library import zz_feature_map
    from qiskit.providers import Options
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_machine_learning.kernels import FidelityQuantumKernel
    from qiskit_machine_learning.state_fidelities import ComputeUncompute
    from sklearn.svm import SVC

    from qkdctl.qml.backends import open_backend

    if np.unique(tr_y).size < 2:
        return np.full(te_c.size, tr_y[0]), 0
    qb = open_backend(backend, seed=seed)
    pm = generate_preset_pass_manager(optimization_level=1, backend=qb.backend, seed_transpiler=seed)
    fid = ComputeUncompute(sampler=qb.sampler(), pass_manager=pm, options=Options(shots=shots))
    kernel = FidelityQuantumKernel(feature_map=zz_feature_map(lags, reps=1), fidelity=fid)
    patterns = _bits_of(np.arange(1 << lags), lags) * (np.pi / 2)
    k = kernel.evaluate(patterns)
    n_pat = 1 << lags
    svm = SVC(kernel="precomputed", C=1.0).fit(k[np.ix_(tr_c, tr_c)], tr_y)
    return svm.predict(k[np.ix_(te_c, tr_c)]), shots * n_pat * (n_pat - 1) // 2


_FITS = {"markov": _markov, "logreg": _logreg, "qkernel": _qkernel}


def audit(bits: np.ndarray, models: tuple[str, ...] = MODELS, delta: float = 1e-3, lags: int = LAGS,
          max_train: int = 4000, **qopts) -> list[Advantage]:
    """Advantage of every model at predicting the next bit of `bits` (0/1 array).

    max_train caps the training bits of the kernel model (its SVM is quadratic);
    qopts (backend, seed, shots) go to the quantum model.
    """
    b = np.asarray(bits)
    if b.ndim != 1 or b.size < 4 * (lags + 1) or (b.size and (b.min() < 0 or b.max() > 1)):
        raise QkdInputError(f"audit needs a 1-D 0/1 array of >= {4 * (lags + 1)} bits")
    unknown = [m for m in models if m not in _FITS]
    if unknown:
        raise QkdInputError(f"unknown predictability models {unknown}; known: {', '.join(MODELS)}")
    if not 0 < delta < 1:
        raise QkdInputError(f"delta must be in (0, 1), got {delta}")
    codes, nxt = lagged(b, lags)
    cut = int(TRAIN_FRACTION * codes.size)
    te_c, te_y = codes[cut:], nxt[cut:]
    out = []
    width = math.sqrt(math.log(2 * len(models) / delta) / (2 * te_c.size))
    for name in models:
        n_tr = min(cut, max_train) if name == "qkernel" else cut
        pred, shots = _FITS[name](codes[cut - n_tr:cut], nxt[cut - n_tr:cut], te_c, lags, **qopts)
        acc = float(np.mean(pred == te_y))
        adv = acc - 0.5
        out.append(Advantage(name, int(te_c.size), acc, adv, adv - width, adv + width, int(shots)))
    return out
