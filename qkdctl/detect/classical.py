"""Classical ML detectors (scikit-learn) on the shared features.

- one-class models of "normal" (trained on normal blocks only): isolation forest
  and one-class SVM (RBF kernel; gamma 'scale');
- supervised classifiers on labeled blocks (0 = normal or benign, 1 = attack):
  logistic regression, random forest, gradient boosting.
Features are standardized with the training set's robust statistics (median,
IQR) before every model; scores are "larger = more anomalous".
"""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import FALSE_ALARM_TARGET, ScoredDetector, check_matrix, holdout_split, training_labels

ONE_CLASS = ("iforest", "ocsvm")
SUPERVISED = ("logreg", "forest", "boosting")


def _make(kind: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import OneClassSVM

    if kind == "iforest":
        return IsolationForest(n_estimators=200, random_state=seed)
    if kind == "ocsvm":
        return OneClassSVM(kernel="rbf", gamma="scale", nu=0.01)
    if kind == "logreg":
        return LogisticRegression(C=10.0, max_iter=2000)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=200, random_state=seed, min_samples_leaf=2)
    if kind == "boosting":
        return HistGradientBoostingClassifier(random_state=seed)
    raise QkdInputError(f"unknown classical model {kind!r}; known: {', '.join(ONE_CLASS + SUPERVISED)}")


class RobustScaler:
    """(x - median) / IQR per feature, IQR floored so constant features stay finite."""

    def __init__(self, x: np.ndarray) -> None:
        self.center = np.median(x, axis=0)
        iqr = np.quantile(x, 0.75, axis=0) - np.quantile(x, 0.25, axis=0)
        self.scale = np.where(iqr > 1e-12, iqr, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.center) / self.scale


class ClassicalDetector(ScoredDetector):
    """A scikit-learn model behind the Detector interface (kind in ONE_CLASS + SUPERVISED)."""

    def __init__(self, kind: str, seed: int = 0, severity: str = "abort") -> None:
        super().__init__(severity)
        _make(kind, seed)  # validates the name
        self.kind = kind
        self.supervised = kind in SUPERVISED
        self.seed = int(seed)
        self.name = f"classical:{kind}"
        self.model = None
        self.scaler: RobustScaler | None = None

    def fit(self, x: np.ndarray, y: np.ndarray | None = None,
            false_alarm: float = FALSE_ALARM_TARGET) -> "ClassicalDetector":
        """Train: one-class kinds on normal rows x (y ignored); supervised kinds need y (0/1).

        A seeded HOLDOUT_FRACTION of the normal rows (label 0) is kept out of fitting
        and sets the alarm threshold (scores of rows a model was fitted on are optimistic).
        """
        x = check_matrix(x, "training features")
        y = training_labels(self.name, x.shape[0], y, self.kind in SUPERVISED)
        normal_idx = np.flatnonzero(y == 0)
        if normal_idx.size < 2:
            raise QkdInputError(f"{self.name}: needs >= 2 normal rows, got {normal_idx.size}")
        fit_n, cal_n = holdout_split(normal_idx.size, self.seed)
        keep = np.ones(x.shape[0], dtype=bool)
        keep[normal_idx[cal_n]] = False
        self.scaler = RobustScaler(x[normal_idx[fit_n]])
        self.model = _make(self.kind, self.seed)
        if self.kind in SUPERVISED:
            self.model.fit(self.scaler(x[keep]), y[keep])
        else:
            self.model.fit(self.scaler(x[normal_idx[fit_n]]))
        self.calibrate(x[normal_idx[cal_n]], false_alarm)
        return self

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise QkdInputError(f"{self.name}: not trained")
        z = self.scaler(check_matrix(x))
        if self.kind in SUPERVISED:
            if hasattr(self.model, "decision_function"):
                return np.asarray(self.model.decision_function(z), dtype=np.float64)
            p = np.clip(self.model.predict_proba(z)[:, 1], 1e-4, 1 - 1e-4)
            return np.log(p / (1 - p))
        return -np.asarray(self.model.score_samples(z), dtype=np.float64)

    def state(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "model": self.model, "scaler": self.scaler}

    @classmethod
    def from_state(cls, state: dict) -> "ClassicalDetector":
        det = cls(state["kind"], state["seed"])
        det.model = state["model"]
        det.scaler = state["scaler"]
        return det
