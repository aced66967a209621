"""Parameter estimation: disclose a random sample of the sifted key, count errors.

Two modes:
- sampling (BB84 with both bases kept): in every basis a uniform random subset of
  the sifted bits (a fraction or a fixed count, without replacement) is disclosed
  and compared; the rest is kept for key;
- `disclose_x=True` (Lim et al., PRA 89, 022307 (2014)): the X basis is fully
  disclosed to bound the phase error; Z is the key basis, sampled only if a
  fraction or count is given (its QBER is otherwise learnt from error correction).
Gains per intensity are detections / pulses sent, from the sifting counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qkdctl.core.constants import BASIS_X, BASIS_Z, N_INTENSITIES
from qkdctl.core.errors import QkdInputError
from qkdctl.core.sift import SiftResult


@dataclass(frozen=True)
class Estimate:
    """Figures of one block's parameter estimation.

    errors, sampled: int64[2, 3] disclosed bits in error / disclosed bits, by basis
    (0 Z, 1 X) and intensity.  qber: float[2, 3] errors / sampled (nan when none
    sampled); qber_basis: float[2] over all intensities.  gain: float[2, 3]
    detections / pulses sent (nan when no pulse); gain_intensity: float[3] over
    both bases.  key_index, disclosed_index: per basis, sorted int64 positions in
    the sifted arrays kept for key / disclosed.
    """

    errors: np.ndarray
    sampled: np.ndarray
    qber: np.ndarray
    qber_basis: np.ndarray
    gain: np.ndarray
    gain_intensity: np.ndarray
    key_index: tuple[np.ndarray, np.ndarray]
    disclosed_index: tuple[np.ndarray, np.ndarray]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def _sample_size(n: int, fraction: float | None, count: int | None) -> int:
    if fraction is not None:
        return int(round(fraction * n))
    if count is not None:
        return min(count, n)
    return 0


def estimate(
    sifted: SiftResult,
    rng: np.random.Generator,
    *,
    sample_fraction: float | None = None,
    sample_count: int | None = None,
    disclose_x: bool = False,
) -> Estimate:
    """Disclose a random sample of each basis (all of X with disclose_x) and count errors.

    sample_fraction in [0, 1] or sample_count >= 0 (per basis; a count larger than
    a basis takes all of it) -- at most one of them.  Randomness only from rng.
    """
    if not isinstance(rng, np.random.Generator):
        raise QkdInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if sample_fraction is not None and sample_count is not None:
        raise QkdInputError("estimate: give sample_fraction or sample_count, not both")
    if sample_fraction is not None and not 0.0 <= sample_fraction <= 1.0:
        raise QkdInputError(f"estimate: sample_fraction must be in [0, 1], got {sample_fraction}")
    if sample_count is not None and (int(sample_count) != sample_count or sample_count < 0):
        raise QkdInputError(f"estimate: sample_count must be an integer >= 0, got {sample_count}")

    errors = np.zeros((2, N_INTENSITIES), dtype=np.int64)
    sampled = np.zeros((2, N_INTENSITIES), dtype=np.int64)
    key_index: list[np.ndarray] = []
    disclosed_index: list[np.ndarray] = []
    for b in (BASIS_Z, BASIS_X):
        key = sifted.basis(b)
        n = len(key)
        if disclose_x and b == BASIS_X:
            chosen = np.ones(n, dtype=bool)
        else:
            chosen = np.zeros(n, dtype=bool)
            k = _sample_size(n, sample_fraction, sample_count)
            chosen[rng.choice(n, size=k, replace=False)] = True
        wrong = key.alice_bit != key.bob_bit
        errors[b] = np.bincount(key.intensity[chosen & wrong], minlength=N_INTENSITIES)
        sampled[b] = np.bincount(key.intensity[chosen], minlength=N_INTENSITIES)
        disclosed_index.append(np.flatnonzero(chosen))
        key_index.append(np.flatnonzero(~chosen))

    return Estimate(
        errors=errors,
        sampled=sampled,
        qber=_ratio(errors, sampled),
        qber_basis=_ratio(errors.sum(axis=1), sampled.sum(axis=1)),
        gain=_ratio(sifted.detections, sifted.pulses_sent),
        gain_intensity=_ratio(sifted.detections.sum(axis=0), sifted.pulses_sent.sum(axis=0)),
        key_index=(key_index[0], key_index[1]),
        disclosed_index=(disclosed_index[0], disclosed_index[1]),
    )
