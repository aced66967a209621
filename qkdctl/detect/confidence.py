"""Exact (Clopper-Pearson) confidence bounds on a rate measured as k events in n trials.

Used to state what a finite benchmark proves: "0 misses in 300 attack blocks" means
a detection rate >= 99.0 % at 95 % one-sided confidence; "0 false alarms in 3000
normal blocks" means a false-alarm rate <= 0.1 %.
"""

from __future__ import annotations

import math

from scipy.stats import beta

from qkdctl.core.errors import QkdInputError


def _check(k: int, n: int, confidence: float) -> None:
    if int(n) < 1 or not 0 <= int(k) <= int(n):
        raise QkdInputError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise QkdInputError(f"confidence must be in (0, 1), got {confidence}")


def rate_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper Clopper-Pearson bound on the rate of k events in n trials.

    The p with P[Binomial(n, p) <= k] = 1 - confidence (1.0 when k = n).
    """
    _check(k, n, confidence)
    return 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))


def rate_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower Clopper-Pearson bound on the rate of k events in n trials (0.0 when k = 0)."""
    _check(k, n, confidence)
    return 0.0 if k == 0 else float(beta.ppf(1.0 - confidence, k, n - k + 1))


def trials_for_zero_events(rate: float, confidence: float = 0.95) -> int:
    """Smallest n whose 0 events in n trials bound the rate below `rate`: (1 - rate)^n <= 1 - confidence."""
    if not 0 < rate < 1:
        raise QkdInputError(f"rate must be in (0, 1), got {rate}")
    if not 0 < confidence < 1:
        raise QkdInputError(f"confidence must be in (0, 1), got {confidence}")
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-rate))
