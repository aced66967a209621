"""QBER prediction for the next block, used ONLY to parametrize reconciliation.

What a prediction may change: the QBER handed to reconciliation (`qber_prior` of
process_block), i.e. Cascade's first block size and the LDPC code rate / blind
schedule, and so the size of a Z sample disclosed just to estimate that QBER
(with a prediction it can be zero).
What it may not change: anything in the security statement.  The finite-key
length always uses this block's fully disclosed test-basis (X) counts and the
key-basis errors counted after reconciliation; the abort thresholds use measured
QBERs; verification is unchanged.  A wrong prediction costs leakage or a failed
reconciliation (block aborted), never security.

The predictor combines telemetry known before reconciliation (this block's
disclosed X-basis QBER) with the corrected Z errors of past verified blocks:
q_pred = q_x(now) * r, where r is an exponentially weighted mean of the past
q_z / q_x ratios (1 before any history).
"""

from __future__ import annotations

import math

from qkdctl.core.errors import QkdInputError

QBER_MIN = 1e-4
"""Smallest QBER the ratio is formed with (avoids dividing by a zero QBER)."""


class QberPredictor:
    """Predict the key-basis QBER from the disclosed test-basis QBER and past corrected blocks."""

    def __init__(self, smoothing: float = 0.3) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise QkdInputError(f"predictor smoothing must be in (0, 1], got {smoothing}")
        self.smoothing = smoothing
        self.ratio = 1.0
        self.n_observed = 0

    def observe(self, qber_x: float, qber_z_corrected: float) -> None:
        """Record a verified block: its disclosed X QBER and its corrected Z error rate."""
        for name, q in (("qber_x", qber_x), ("qber_z_corrected", qber_z_corrected)):
            if not (math.isfinite(q) and 0.0 <= q <= 1.0):
                raise QkdInputError(f"predictor: {name} must be in [0, 1], got {q}")
        r = max(qber_z_corrected, QBER_MIN) / max(qber_x, QBER_MIN)
        a = self.smoothing if self.n_observed else 1.0
        self.ratio = (1.0 - a) * self.ratio + a * r
        self.n_observed += 1

    def predict(self, qber_x: float) -> float:
        """Predicted Z QBER of the block whose X QBER (disclosed) is qber_x."""
        if not (math.isfinite(qber_x) and 0.0 <= qber_x <= 1.0):
            raise QkdInputError(f"predictor: qber_x must be in [0, 1], got {qber_x}")
        return min(max(qber_x, QBER_MIN) * self.ratio, 0.5)


def sample_bits_for(qber: float, rel_err: float, z_score: float = 2.0) -> int:
    """Key-basis bits to disclose so a sampled QBER has relative error rel_err at z_score sigma.

    Binomial sample: k = z^2 (1 - q) / (q rel_err^2).
    """
    if not 0.0 < qber < 1.0 or not rel_err > 0.0 or not z_score > 0.0:
        raise QkdInputError(f"sample_bits_for: need 0 < qber < 1 and rel_err, z_score > 0; "
                            f"got {qber}, {rel_err}, {z_score}")
    return int(math.ceil(z_score**2 * (1.0 - qber) / (qber * rel_err**2)))
