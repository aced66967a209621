"""Common shape of the detectors: features -> anomaly score -> alarm.

Every detector is a Detector callable for the engine, `detector(report, history)
-> list[Alarm]`, and also exposes `score(report, history)` (larger = more
anomalous) so the benchmark can draw ROC curves.  Trained models are fitted on
feature matrices from `qkdctl.detect.features` and keep their state in plain
data (`state()` / `from_state`), saved with `save`/`load` so a loaded model
scores identically.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from qkdctl.blockreport import Alarm, BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.detect.features import N_FEATURES, extract

SEVERITIES = ("info", "warn", "abort")
FALSE_ALARM_TARGET = 1e-3  # alarms per normal block the thresholds are set for
HOLDOUT_FRACTION = 0.3  # normal training rows kept out of fitting to set the alarm threshold


def check_matrix(x: np.ndarray, what: str = "features") -> np.ndarray:
    """x as a finite float64[n, N_FEATURES] array, else QkdInputError naming the problem."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise QkdInputError(f"{what} must have shape (n, {N_FEATURES}), got {x.shape}")
    if x.shape[0] == 0:
        raise QkdInputError(f"{what}: no rows")
    if not np.all(np.isfinite(x)):
        raise QkdInputError(f"{what}: non-finite values")
    return x


def training_labels(name: str, n_rows: int, y, supervised: bool) -> np.ndarray:
    """Labels of `n_rows` training rows (0 normal, 1 attack): checked for a supervised
    model (QkdInputError naming `name`), all 0 for a one-class model (y ignored)."""
    if not supervised:
        return np.zeros(n_rows, dtype=int)
    if y is None:
        raise QkdInputError(f"{name}: supervised model needs labels y")
    y = np.asarray(y).astype(int)
    if y.shape != (n_rows,) or set(np.unique(y)) != {0, 1}:
        raise QkdInputError(f"{name}: y must hold 0 and 1 for each of {n_rows} rows")
    return y


def holdout_split(n: int, seed: int, fraction: float = HOLDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, calibration rows): a seeded random split of range(n) (calibration >= 1 row)."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(1, int(round(fraction * n))), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


def threshold_for(normal_scores: np.ndarray, false_alarm: float = FALSE_ALARM_TARGET,
                  margin: float = 0.5) -> float:
    """Alarm threshold: the (1 - false_alarm) quantile of normal scores, raised by `margin`
    interquartile ranges of them (a guard for the tail a small sample misses)."""
    s = np.asarray(normal_scores, dtype=np.float64)
    q = float(np.quantile(s, 1.0 - false_alarm))
    return q + margin * float(np.quantile(s, 0.75) - np.quantile(s, 0.25))


class ScoredDetector:
    """Base of the model detectors: one score, one threshold, one alarm severity.

    Subclasses implement `score_matrix(x) -> float[n]` and `state()`.
    """

    name = "detector"
    supervised = False  # True: fit(x, y) needs labels (1 = attack)

    def __init__(self, severity: str = "abort") -> None:
        if severity not in SEVERITIES:
            raise QkdInputError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.severity = severity
        self.threshold = float("inf")
        self.shots = 0  # circuit shots spent so far (quantum models)

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Anomaly scores (float64[n]) of a feature matrix."""
        raise NotImplementedError

    def score_by_severity(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """{severity: scores}; an alarm of that severity fires where scores > threshold."""
        return {self.severity: self.score_matrix(x)}

    def score(self, report: BlockReport, history: Sequence[BlockReport] = ()) -> float:
        """Anomaly score of one block (larger = more anomalous)."""
        return float(self.score_matrix(extract(report, history)[None, :])[0])

    def calibrate(self, normal_x: np.ndarray, false_alarm: float = FALSE_ALARM_TARGET) -> None:
        """Set the threshold from normal feature rows."""
        self.threshold = threshold_for(self.score_matrix(check_matrix(normal_x)), false_alarm)

    def __call__(self, report: BlockReport, history: Sequence[BlockReport]) -> list[Alarm]:
        s = self.score(report, history)
        if s > self.threshold:
            return [Alarm(self.name, self.severity, f"anomaly score {s:.3g} above {self.threshold:.3g}")]
        return []

    def save(self, path: str | Path) -> None:
        """Write the detector (class, state, threshold, severity) to `path` (pickle)."""
        with open(path, "wb") as fh:
            pickle.dump({"class": type(self).__name__, "module": type(self).__module__,
                         "state": self.state(), "threshold": self.threshold,
                         "severity": self.severity}, fh)

    def state(self) -> dict:
        """Plain-data state from which `from_state` rebuilds the fitted model."""
        raise NotImplementedError


def load(path: str | Path) -> ScoredDetector:
    """A detector saved with `ScoredDetector.save` (only qkdctl.detect classes are accepted).

    The file is a pickle: load only files this installation wrote (like any model file).
    """
    import importlib

    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise QkdInputError(f"cannot read detector file {path}: {exc}") from None
    module = str(data.get("module", ""))
    if not module.startswith("qkdctl.detect."):
        raise QkdInputError(f"detector file {path}: class from {module!r} is not a qkdctl detector")
    cls = getattr(importlib.import_module(module), data["class"])
    det = cls.from_state(data["state"])
    det.threshold = float(data["threshold"])
    det.severity = data["severity"]
    return det
