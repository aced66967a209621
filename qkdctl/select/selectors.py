"""Selectors: which sifted events go on to reconciliation and into the finite-key bound.

A selector is fixed before the block's errors are revealed (it is fitted on past
labelled blocks only) and decides from PUBLIC_COLUMNS alone, with one rule for both
bases, every intensity and both bits (docs/selection.md).  Four kinds:
- WindowSelector.fixed(gate): today's timing window (keeps every gated event);
- fit_window: an asymmetric window [lo_ps, hi_ps] and a minimum gap to the previous
  click, optimized for the finite-key length of past blocks.  Its centre absorbs the
  common arrival offset; detectors of one basis share it by construction, because a
  per-detector window would make the kept/discarded list depend on Bob's bit;
- ScoreSelector around a classical model (scikit-learn gradient boosting or
  logistic regression) predicting the error probability of an event;
- ScoreSelector around the quantum-kernel model of qkdctl.select.quantum.
Score selectors keep events whose predicted error score is at most a threshold,
chosen to maximise the finite-key length of past blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.tags import GateConfig
from qkdctl.select.features import EventFeatures
from qkdctl.select.objective import LabelledBlock, selection_length_bits, total_length_bits

THRESHOLD_KEEP_FRACTIONS = np.linspace(1.0, 0.5, 26)
"""Candidate kept fractions (of the training events) for a score threshold, keep-all first."""
WINDOW_GRID_STEPS = 16
"""Grid steps per window edge in fit_window."""
MIN_GAP_CANDIDATES = (0, 2, 5, 10, 20, 30, 50, 100, 200, 500, 1000)
"""Candidate minimum gaps (slots) to the previous click in fit_window."""
MAX_TRAINING_ROWS = 60_000
"""Rows a model is trained on at most (an even stride through the training events)."""


class Selector(Protocol):
    """keep(features) -> bool mask; describe() -> JSON-friendly parameters."""

    name: str

    def keep(self, features: EventFeatures) -> np.ndarray:
        """True for the events that go on to reconciliation and the bound."""

    def describe(self) -> dict:
        """Parameters of the selector (stored in the BlockReport)."""


@dataclass(frozen=True)
class WindowSelector:
    """Keep events with lo_ps <= dt_ps <= hi_ps and at least min_gap_slots after the last click."""

    lo_ps: float
    hi_ps: float
    min_gap_slots: int = 0
    name: str = "window"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo_ps) and np.isfinite(self.hi_ps) and self.lo_ps <= self.hi_ps):
            raise QkdInputError(f"window: need finite lo_ps <= hi_ps, got [{self.lo_ps}, {self.hi_ps}]")
        if self.min_gap_slots < 0:
            raise QkdInputError(f"window: min_gap_slots must be >= 0, got {self.min_gap_slots}")

    @classmethod
    def fixed(cls, gate: GateConfig) -> "WindowSelector":
        """Today's window: the whole gate (keeps every gated event)."""
        half = gate.width_ps / 2.0
        return cls(-half, half, 0, name="fixed")

    def keep(self, features: EventFeatures) -> np.ndarray:
        dt = features.dt_ps
        return (dt >= self.lo_ps) & (dt <= self.hi_ps) & (features.since_any_slots >= self.min_gap_slots)

    def describe(self) -> dict:
        return {"lo_ps": self.lo_ps, "hi_ps": self.hi_ps, "min_gap_slots": self.min_gap_slots}


def _check_training(blocks: list[LabelledBlock]) -> None:
    if not blocks:
        raise QkdInputError("selector fit: no labelled past blocks to fit on")


def fit_window(blocks: list[LabelledBlock], settings: DecoySettings, f_ec: float,
               gate: GateConfig) -> WindowSelector:
    """Window and minimum gap maximizing the summed finite-key length of past blocks.

    Coordinate search: both edges on a grid over the gate, then the gap, then the
    edges again at the chosen gap.
    """
    _check_training(blocks)
    half = gate.width_ps / 2.0
    edges = np.linspace(-half, half, 2 * WINDOW_GRID_STEPS + 1)
    lo_c, hi_c = edges[edges < 0], edges[edges > 0]

    def score(lo: float, hi: float, gap: int) -> float:
        return total_length_bits(blocks, WindowSelector(lo, hi, gap).keep, settings, f_ec)

    best = (score(-half, half, 0), -half, half, 0)
    for _ in range(2):
        gap0 = best[3]
        for lo in lo_c:
            for hi in hi_c:
                s = score(lo, hi, gap0)
                if s > best[0]:
                    best = (s, lo, hi, gap0)
        _, lo0, hi0, _ = best
        for gap in MIN_GAP_CANDIDATES:
            s = score(lo0, hi0, gap)
            if s > best[0]:
                best = (s, lo0, hi0, gap)
    _, lo, hi, gap = best
    return WindowSelector(float(lo), float(hi), int(gap), name="optimized_window")


class ErrorModel(Protocol):
    """A model of an event's error probability from PUBLIC_COLUMNS."""

    def fit(self, x: np.ndarray, wrong: np.ndarray) -> "ErrorModel":
        """Train on public feature rows and error flags."""

    def score(self, x: np.ndarray) -> np.ndarray:
        """Error score per row (higher = more likely wrong; monotone in probability)."""


@dataclass(frozen=True)
class ScoreSelector:
    """Keep events whose model score is at most `threshold`."""

    name: str
    model: ErrorModel
    threshold: float

    def keep(self, features: EventFeatures) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, dtype=bool)
        return self.model.score(features.public_matrix()) <= self.threshold

    def describe(self) -> dict:
        return {"threshold": float(self.threshold), "model": type(self.model).__name__}


class SklearnErrorModel:
    """scikit-learn classifier behind ErrorModel: 'gradient_boosting' or 'logistic'."""

    def __init__(self, kind: str, seed: int) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        if kind == "gradient_boosting":
            self._clf = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15,
                                                       learning_rate=0.1, random_state=seed)
        elif kind == "logistic":
            self._clf = make_pipeline(StandardScaler(), PolynomialFeatures(2), LogisticRegression(max_iter=500))
        else:
            raise QkdInputError(f"classical model kind must be 'gradient_boosting' or 'logistic', got {kind!r}")
        self.kind = kind

    def fit(self, x: np.ndarray, wrong: np.ndarray) -> "SklearnErrorModel":
        if np.unique(wrong).size < 2:
            raise QkdInputError("classical model: training blocks hold no errors (or only errors)")
        self._clf.fit(x, wrong.astype(np.int64))
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return self._clf.predict_proba(x)[:, 1]


def training_rows(blocks: list[LabelledBlock]) -> tuple[np.ndarray, np.ndarray]:
    """(public feature rows, error flags) of the events of both bases of the blocks
    (every event, or an even stride of them beyond MAX_TRAINING_ROWS)."""
    _check_training(blocks)
    xs = np.concatenate([f.public_matrix() for b in blocks for f in (b.z, b.x)])
    ys = np.concatenate([w for b in blocks for w in (b.wrong_z, b.wrong_x)]).astype(bool)
    stride = -(-ys.size // MAX_TRAINING_ROWS)
    return xs[::stride], ys[::stride]


def fit_threshold(name: str, model: ErrorModel, blocks: list[LabelledBlock], settings: DecoySettings,
                  f_ec: float) -> ScoreSelector:
    """Threshold of a fitted model maximizing the summed finite-key length of `blocks`."""
    _check_training(blocks)
    scored = [(b, model.score(b.z.public_matrix()), model.score(b.x.public_matrix())) for b in blocks]
    every = np.concatenate([s for _, sz, sx in scored for s in (sz, sx)])
    best: tuple[float, float] = (float("-inf"), float(np.max(every)))  # ties keep more events
    for frac in THRESHOLD_KEEP_FRACTIONS:
        thr = float(np.quantile(every, frac))
        total = math.fsum(max(selection_length_bits(b, sz <= thr, sx <= thr, settings, f_ec), 0.0)
                          for b, sz, sx in scored)
        if total > best[0]:
            best = (total, thr)
    return ScoreSelector(name, model, best[1])

def fit_model_selector(name: str, model: ErrorModel, blocks: list[LabelledBlock],
                       settings: DecoySettings, f_ec: float) -> ScoreSelector:
    """Train the model on the first half of the blocks, tune its threshold on the rest
    (on all of them when there is a single block)."""
    _check_training(blocks)
    half = max(1, len(blocks) // 2)
    train, tune = blocks[:half], (blocks[half:] or blocks)
    model.fit(*training_rows(train))
    return fit_threshold(name, model, tune, settings, f_ec)
