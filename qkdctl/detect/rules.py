"""Rule detector: the baseline every model must beat.

Each check looks at one feature (qkdctl.detect.features) as a robust z-score
against normal operation — median and scaled MAD of normal blocks — on the
side an attack pushes it, and alarms above a limit set from normal data so the
checks together stay near the false-alarm target.  Checks are data (one frozen
record each).  Besides them, an absolute QBER limit aborts like the pipeline does.

Reference: fitted from normal blocks (`fit`, saved state), or, when not fitted,
the run's own history (at least MIN_HISTORY blocks; before that only the
absolute QBER limit acts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qkdctl.blockreport import Alarm, BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import FALSE_ALARM_TARGET, ScoredDetector, check_matrix, threshold_for
from qkdctl.detect.features import FEATURE_NAMES, extract, extract_many

MIN_HISTORY = 20  # history blocks needed before the unfitted rules use the run as reference
Z_LIMIT_MIN = 5.0  # no check fires below this robust z, whatever the calibration says
TIMING_LIMIT_MIN = 10.0  # arrival-time width checks (normal blocks reach ~5 in 1000; the time shift > 30)
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Check:
    """One rule: feature, side (+1 high is bad, -1 low is bad, 0 both), severity, meaning.

    count_scaled: the feature is estimated from the block's clicks, so its spread is
    scaled by sqrt(reference clicks / block clicks) (a 3 dB connector loss widens it
    by sqrt(2) and must not alarm).  min_limit: the smallest robust z that may alarm.
    """

    name: str
    feature: str
    side: int
    severity: str
    meaning: str
    count_scaled: bool = False
    min_limit: float = Z_LIMIT_MIN


CHECKS: tuple[Check, ...] = (
    Check("qber_excess", "qber_min", +1, "warn", "QBER raised in both bases (intercept-resend?)"),
    Check("decoy_gain", "gain_ratio_decoy", 0, "abort", "decoy/signal gain ratio off (photon-number splitting?)",
          count_scaled=True),
    Check("offgate_clicks", "offgate_fraction", -1, "abort",
          "too few dark counts/afterpulses outside the gate (detector blinding?)"),
    # arrival-time widths are sample deviations (the window one a max over windows): tails heavier
    # than Gaussian, so their limit starts at TIMING_LIMIT_MIN
    Check("arrival_width", "dt_std_ps", +1, "abort", "arrival-time histogram wider (time-shift attack?)",
          count_scaled=True, min_limit=TIMING_LIMIT_MIN),
    Check("arrival_shift", "dt_shift_ps", +1, "abort", "arrival time moved (time-shift attack?)",
          count_scaled=True),
    Check("window_arrival_width", "window_dt_std_max_ps", +1, "abort",
          "arrival-time width raised in a sub-block window", count_scaled=True, min_limit=TIMING_LIMIT_MIN),
)
_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}


class RuleDetector(ScoredDetector):
    """QBER limit plus robust-z checks of decoy gains, dark/afterpulse rate and timing."""

    name = "rules"

    def __init__(self, qber_abort: float = 0.11, checks: Sequence[Check] = CHECKS) -> None:
        super().__init__("abort")
        if not 0 < qber_abort < 0.5:
            raise QkdInputError(f"qber_abort must be in (0, 0.5), got {qber_abort}")
        self.qber_abort = float(qber_abort)
        self.checks = tuple(checks)
        for c in self.checks:
            if c.feature not in _INDEX:
                raise QkdInputError(f"rule {c.name}: unknown feature {c.feature!r}")
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.limits = np.array([c.min_limit for c in self.checks], dtype=np.float64)
        self.threshold = 1.0

    def _reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        center = np.median(x, axis=0)
        mad = MAD_TO_SIGMA * np.median(np.abs(x - center), axis=0)
        floor = 1e-3 * np.maximum(np.abs(center), 1e-6)
        return center, np.maximum(mad, floor)

    def _z(self, x: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """float[n, n_checks]: signed-to-side robust z of every check (larger = worse)."""
        out = np.empty((x.shape[0], len(self.checks)))
        lp = _INDEX["log10_click_prob"]
        counts = np.sqrt(10.0 ** (x[:, lp] - center[lp]))  # sqrt(block clicks / reference clicks)
        for k, c in enumerate(self.checks):
            j = _INDEX[c.feature]
            z = (x[:, j] - center[j]) / scale[j]
            if c.count_scaled:
                z = z * counts
            out[:, k] = np.abs(z) if c.side == 0 else c.side * z
        return out

    def fit(self, normal_x: np.ndarray, y: None = None,
            false_alarm: float = FALSE_ALARM_TARGET) -> "RuleDetector":
        """Reference and per-check limits from normal feature rows (y unused: one-class)."""
        x = check_matrix(normal_x, "normal features")
        self.center, self.scale = self._reference(x)
        z = self._z(x, self.center, self.scale)
        per_check = false_alarm / len(self.checks)
        self.limits = np.array([max(c.min_limit, threshold_for(z[:, k], per_check))
                                for k, c in enumerate(self.checks)])
        return self

    def fit_reports(self, reports: Sequence[BlockReport]) -> "RuleDetector":
        """fit() on the features of normal blocks."""
        return self.fit(extract_many(reports))

    def _ref_for(self, history: Sequence[BlockReport]):
        if self.center is not None:
            return self.center, self.scale
        hist = [h for h in history if h.telemetry]
        if len(hist) < MIN_HISTORY:
            return None
        return self._reference(extract_many(hist))

    def score_by_severity(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """{severity: max over its checks of z / limit}; the QBER limit (abort) scores qber / qber_abort.

        Alarms fire where a score exceeds 1 (self.threshold).  Needs a fitted reference.
        """
        if self.center is None:
            raise QkdInputError("rules: scoring a matrix needs a fitted reference (call fit)")
        x = check_matrix(x)
        z = self._z(x, self.center, self.scale) / self.limits
        out = {"abort": np.maximum(x[:, _INDEX["qber_x"]], x[:, _INDEX["qber_z"]]) / self.qber_abort}
        for k, c in enumerate(self.checks):
            out[c.severity] = np.maximum(out.get(c.severity, -np.inf), z[:, k])
        return out

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Largest score over all severities (the ROC score); alarm where > 1."""
        return np.max(np.vstack(list(self.score_by_severity(x).values())), axis=0)

    def __call__(self, report: BlockReport, history: Sequence[BlockReport]) -> list[Alarm]:
        alarms = []
        q = max(report.qber_x, report.qber_z if np.isfinite(report.qber_z) else 0.0)
        if q > self.qber_abort:
            alarms.append(Alarm("rules:qber", "abort", f"QBER {q:.4f} above {self.qber_abort}"))
        ref = self._ref_for(history)
        if ref is None or not report.telemetry:
            return alarms
        z = self._z(extract(report, history)[None, :], *ref)[0]
        for k, c in enumerate(self.checks):
            if z[k] > self.limits[k]:
                alarms.append(Alarm(f"rules:{c.name}", c.severity,
                                    f"{c.meaning}: {c.feature} z={z[k]:.1f} > {self.limits[k]:.1f}"))
        return alarms

    def state(self) -> dict:
        return {"qber_abort": self.qber_abort, "center": None if self.center is None else self.center.tolist(),
                "scale": None if self.scale is None else self.scale.tolist(), "limits": self.limits.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "RuleDetector":
        det = cls(qber_abort=state["qber_abort"])
        if state["center"] is not None:
            det.center = np.asarray(state["center"], dtype=np.float64)
            det.scale = np.asarray(state["scale"], dtype=np.float64)
        det.limits = np.asarray(state["limits"], dtype=np.float64)
        return det
