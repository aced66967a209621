"""Learned decoy-parameter predictor (Wang & Lo, PRA 100, 062334 (2019)): link -> near-optimal settings.

A regressor maps LinkFigures.features() = (loss_db, misalignment, log10 dark_count_prob,
afterpulse_prob, log10 block_size) to the optimizer's unconstrained coordinates of
the optimal (mu1, mu2, p_mu, P(Z)) (qkdctl.tune.decoy's logistic / softmax
transform), so every prediction decodes to valid settings.  It is trained on
optima computed by `optimize_decoy` (benchmarks/make_decoy_data.py ships a small
set).  Interface for any regressor, classical or quantum: `fit(features, choices)`
and `predict(features) -> list[DecoyChoice]`; the quantum one only has to replace
the model behind `_fit_model` / `_predict_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from qkdctl.core.errors import QkdInputError
from qkdctl.tune.decoy import DecoyChoice, DecoyTuner, LinkFigures, ProtocolConstants, _decode, _encode

N_FEATURES = 5
N_TARGETS = 5  # mu1, mu2 logits; two softmax logits of p_mu; logit of P(Z)


def encode_choices(choices: Sequence[DecoyChoice], constants: ProtocolConstants) -> np.ndarray:
    """(n, 5) unconstrained coordinates of decoy settings (the regression targets)."""
    return np.array([_encode(c, False, constants) for c in choices])


def load_training_set(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (n, 5), targets (n, 5), optimal rates (n,)) from a .npz written by make_decoy_data."""
    try:
        with np.load(path) as data:
            out = data["features"], data["targets"], data["rates"]
    except (OSError, KeyError, ValueError) as exc:
        raise QkdInputError(f"decoy training set {path}: {exc}") from None
    if out[0].ndim != 2 or out[0].shape[1] != N_FEATURES or out[1].shape != (len(out[0]), N_TARGETS):
        raise QkdInputError(f"decoy training set {path}: shapes {out[0].shape}, {out[1].shape} "
                            f"(need (n, {N_FEATURES}) and (n, {N_TARGETS}))")
    return out


class DecoyPredictor:
    """Standardised inputs and targets around a scikit-learn MLPRegressor.

    hidden: layer sizes; seed: the network's initialisation and shuffling.
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), seed: int = 0,
                 constants: ProtocolConstants = ProtocolConstants()) -> None:
        self.hidden, self.seed, self.constants = tuple(int(h) for h in hidden), int(seed), constants
        self._x_scale = StandardScaler()
        self._y_scale = StandardScaler()
        self._model: MLPRegressor | None = None

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self._model = MLPRegressor(hidden_layer_sizes=self.hidden, activation="tanh", solver="lbfgs",
                                   alpha=1e-4, max_iter=5000, random_state=self.seed).fit(x, y)

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        return self._model.predict(x).reshape(len(x), -1)

    def fit(self, features: np.ndarray, targets: np.ndarray) -> "DecoyPredictor":
        """Train on (n, 5) features and (n, 5) encoded optimal settings (encode_choices)."""
        x, y = np.asarray(features, dtype=float), np.asarray(targets, dtype=float)
        if x.ndim != 2 or x.shape[1] != N_FEATURES or y.shape != (len(x), N_TARGETS) or len(x) < 10:
            raise QkdInputError(f"fit needs >= 10 rows of {N_FEATURES} features and {N_TARGETS} targets, "
                                f"got {x.shape} and {y.shape}")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise QkdInputError("fit: features and targets must be finite")
        self._fit_model(self._x_scale.fit_transform(x), self._y_scale.fit_transform(y))
        return self

    def predict(self, features: np.ndarray) -> list[DecoyChoice]:
        """Decoy settings for each row of (n, 5) features (valid by construction)."""
        if self._model is None:
            raise QkdInputError("decoy predictor is not trained (call fit first)")
        x = np.atleast_2d(np.asarray(features, dtype=float))
        if x.shape[1] != N_FEATURES or not np.all(np.isfinite(x)):
            raise QkdInputError(f"predict needs finite rows of {N_FEATURES} features, got shape {x.shape}")
        y = self._y_scale.inverse_transform(self._predict_model(self._x_scale.transform(x)))
        return [_decode(row, None, self.constants) for row in y]


DEFAULT_TRAINING_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "decoy_train.npz"


class DecoyMlpTuner(DecoyTuner):
    """Intensities from the learned predictor (microseconds instead of an optimization).

    The predictor gives the full optimum (mu, p_mu, P(Z)); only mu1, mu2 are applied
    (the rest is not settable, and is reported).  training_set: .npz of
    make_decoy_data (default: the shipped benchmarks/data/decoy_train.npz).
    """

    name = "decoy-mlp"

    def __init__(self, training_set: str | Path = DEFAULT_TRAINING_SET, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        features, targets, _ = load_training_set(training_set)
        self.predictor = DecoyPredictor(seed=seed, constants=self.constants).fit(features, targets)

    def _choose(self, figures: LinkFigures, held: DecoyChoice, constants: ProtocolConstants):
        best = self.predictor.predict(figures.features())[0]
        mu1 = min(best.mu[0], constants.mu_max)
        mu2 = min(best.mu[1], 0.999 * mu1)
        return (mu1, mu2), "MLP prediction", {"full_optimum": best.as_dict()}
