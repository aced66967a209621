"""Randomness sources for Alice's and Bob's choices, with NIST SP 800-90B health tests.

One interface, `RandomSource` (`bits(n)`, `words(n)`), three kinds (CHOICE_SOURCES):
- "prng": `GeneratorSource`, a seeded numpy Generator — the simulator's default,
  reproducible from the run's seed; never a source of real key material.
- "os": `OsRandomSource`, the operating system's CSPRNG (`os.urandom`).
- "qrng": `DetectorQrng`, a quantum RNG fed by raw detector bits (a beam splitter's
  which-path choice or photon arrival times; on a bench its real clicks, in the
  simulator firmware_sim.physics.qrng).  Every raw sample passes the continuous
  health tests of SP 800-90B section 4.4 — the repetition count test (4.4.1) and the
  adaptive proportion test (4.4.2, window 1024 for binary samples) — before use.  A
  failure stops the source for good (`SecurityAbort`, now and on every later call):
  no key is made from it.  Raw bits are conditioned by a Toeplitz hash
  (qkdctl.core.amplify) whose output length comes from the min-entropy estimate of
  the batch (most-common-value estimator, SP 800-90B 6.3.1, capped by the claimed
  entropy): m = floor(n * H - 2 log2(1/EPS_EXTRACT)) (leftover hash lemma).

The health-test thresholds are computed from the claimed min-entropy per sample
`h_claim` and the false-positive probability `alpha` (2^-20 by default, the
standard's recommendation for the repetition count test).  Pure computation: the
raw bits and the extractor's seed come from objects passed in (reading the OS
CSPRNG is the only system call).
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
from numba import njit
from scipy.stats import binom

from qkdctl.core.amplify import toeplitz_hash
from qkdctl.core.errors import QkdInputError, SecurityAbort

CHOICE_SOURCES = ("prng", "qrng", "os")
ALPHA = 2.0**-20
APT_WINDOW_BINARY = 1024
EPS_EXTRACT = 2.0**-64


def _count(n: int, what: str = "bit count") -> int:
    if isinstance(n, bool) or int(n) != n or int(n) < 0:
        raise QkdInputError(f"{what} must be an integer >= 0, got {n!r}")
    return int(n)


class RandomSource(ABC):
    """Uniform random bits for Alice's and Bob's choices."""

    name = "source"

    @abstractmethod
    def bits(self, n: int) -> np.ndarray:
        """n uniformly random bits (uint8 0/1)."""

    def words(self, n: int) -> np.ndarray:
        """n uniformly random 64-bit words (uint64), packed from 64 n bits (first bit = LSB)."""
        b = self.bits(64 * _count(n, "word count"))
        return np.packbits(b, bitorder="little").view("<u8").astype(np.uint64)


class GeneratorSource(RandomSource):
    """A numpy Generator as a source (seeded: reproducible, for the simulator only).

    words(n) is the Generator's raw bit-generator output, so code that drew
    `rng.bit_generator.random_raw(n)` draws the same numbers through this source.
    """

    name = "prng"

    def __init__(self, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise QkdInputError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        self.rng = rng

    def bits(self, n: int) -> np.ndarray:
        """n random bits (uint8 0/1) from the Generator."""
        return self.rng.integers(0, 2, _count(n), dtype=np.uint8)

    def words(self, n: int) -> np.ndarray:
        """n raw 64-bit words of the Generator's bit generator."""
        return np.asarray(self.rng.bit_generator.random_raw(_count(n, "word count")), dtype=np.uint64)


class OsRandomSource(RandomSource):
    """Random bits from the operating system's CSPRNG."""

    name = "os"

    def bits(self, n: int) -> np.ndarray:
        """n uniformly random bits (uint8 0/1)."""
        n = _count(n)
        raw = np.frombuffer(os.urandom((n + 7) // 8), dtype=np.uint8)
        return np.unpackbits(raw)[:n]

    def words(self, n: int) -> np.ndarray:
        """n uniformly random 64-bit words (uint64)."""
        n = _count(n, "word count")
        return np.frombuffer(os.urandom(8 * n), dtype="<u8").astype(np.uint64)


def rct_cutoff(h_claim: float, alpha: float = ALPHA) -> int:
    """Repetition count cutoff C = 1 + ceil(-log2(alpha) / H) (SP 800-90B 4.4.1)."""
    return 1 + math.ceil(-math.log2(alpha) / h_claim)


def apt_cutoff(h_claim: float, window: int = APT_WINDOW_BINARY, alpha: float = ALPHA) -> int:
    """Adaptive proportion cutoff C = 1 + CRITBINOM(W, 2^-H, 1 - alpha) (SP 800-90B 4.4.2).

    CRITBINOM(W, p, q): the smallest c with P[Binomial(W, p) <= c] >= q.  The count
    includes the window's first sample (the reference value).
    """
    return 1 + int(binom.ppf(1.0 - alpha, window, 2.0 ** (-h_claim)))


@njit(cache=True)
def _health_kernel(x, state, rct_c, apt_c, window):
    # state: [last value, run length, apt reference, apt count, apt position]; returns first failing index or -1
    for i in range(x.size):
        v = x[i]
        if state[1] > 0 and v == state[0]:
            state[1] += 1
            if state[1] >= rct_c:
                return i
        else:
            state[0] = v
            state[1] = 1
        if state[4] == 0:
            state[2] = v
            state[3] = 1
        elif v == state[2]:
            state[3] += 1
            if state[3] >= apt_c:
                return i
        state[4] += 1
        if state[4] == window:
            state[4] = 0
    return -1


class HealthTests:
    """Continuous repetition-count and adaptive-proportion tests over a stream of samples."""

    def __init__(self, h_claim: float = 1.0, alpha: float = ALPHA, window: int = APT_WINDOW_BINARY) -> None:
        if not 0 < h_claim <= 8:
            raise QkdInputError(f"claimed min-entropy must be in (0, 8] bits/sample, got {h_claim}")
        if not 0 < alpha < 1:
            raise QkdInputError(f"alpha must be in (0, 1), got {alpha}")
        self.rct_c = rct_cutoff(h_claim, alpha)
        self.apt_c = apt_cutoff(h_claim, window, alpha)
        self.window = int(window)
        self._state = np.zeros(5, dtype=np.int64)
        self.samples_seen = 0

    def check(self, samples: np.ndarray) -> int:
        """Index of the first failing sample in this batch, or -1 (state carries over batches)."""
        x = np.ascontiguousarray(samples, dtype=np.int64)
        if x.ndim != 1:
            raise QkdInputError("health tests: samples must be a 1-D array")
        fail = int(_health_kernel(x, self._state, self.rct_c, self.apt_c, self.window))
        self.samples_seen += x.size if fail < 0 else fail + 1
        return fail


def mcv_min_entropy(samples: np.ndarray, n_values: int = 2) -> float:
    """Most-common-value min-entropy estimate (bits/sample, SP 800-90B 6.3.1).

    p_u = min(1, p + 2.576 sqrt(p (1 - p) / (L - 1))) with p the most common value's
    frequency; H = -log2(p_u).
    """
    x = np.asarray(samples, dtype=np.int64)
    if x.ndim != 1 or x.size < 2:
        raise QkdInputError("min-entropy estimate needs a 1-D array of >= 2 samples")
    if x.min() < 0 or x.max() >= n_values:
        raise QkdInputError(f"samples must lie in 0..{n_values - 1}")
    p = np.bincount(x, minlength=n_values).max() / x.size
    p_u = min(1.0, p + 2.576 * math.sqrt(p * (1 - p) / (x.size - 1)))
    return -math.log2(p_u)


class DetectorQrng(RandomSource):
    """Health-tested, entropy-estimated, Toeplitz-extracted bits from a raw bit supplier.

    raw: callable n -> uint8 0/1 array of n raw samples (e.g. which detector of a
    pair clicked); h_claim: min-entropy per raw bit the designer claims (the health
    tests' cutoffs; the extractor never uses more); seed_source: where the
    extractor's seeds come from (default the OS CSPRNG; they must be uniform and
    independent of the raw bits); batch: raw bits per extraction.
    """

    name = "qrng"

    def __init__(self, raw: Callable[[int], np.ndarray], h_claim: float = 0.9, batch: int = 1 << 14,
                 seed_source: RandomSource | None = None, alpha: float = ALPHA) -> None:
        if int(batch) < 1024:
            raise QkdInputError(f"batch must be >= 1024 raw bits, got {batch}")
        self.raw = raw
        self.h_claim = float(h_claim)
        self.batch = int(batch)
        self.health = HealthTests(self.h_claim, alpha)
        self.seed_source = seed_source or OsRandomSource()
        self.failed: str = ""
        self.last_min_entropy = float("nan")
        self._pool = np.empty(0, dtype=np.uint8)

    def _extract_batch(self) -> np.ndarray:
        x = np.ascontiguousarray(self.raw(self.batch), dtype=np.uint8)
        if x.shape != (self.batch,) or (x.size and x.max() > 1):
            raise QkdInputError(f"raw source must return {self.batch} bits (0/1), got shape {x.shape}")
        fail = self.health.check(x)
        if fail >= 0:
            self.failed = (f"health test failed at raw sample {self.health.samples_seen} "
                           f"(repetition cutoff {self.health.rct_c}, proportion cutoff {self.health.apt_c}/"
                           f"{self.health.window})")
            raise SecurityAbort(f"QRNG stopped: {self.failed}")
        h = min(self.h_claim, mcv_min_entropy(x))
        self.last_min_entropy = h
        m = int(math.floor(x.size * h - 2 * math.log2(1 / EPS_EXTRACT)))
        if m < 1:
            return np.empty(0, dtype=np.uint8)
        seed = self.seed_source.bits(x.size + m - 1)
        return toeplitz_hash(x, seed, m)

    def bits(self, n: int) -> np.ndarray:
        """n extracted bits; SecurityAbort if any health test has ever failed."""
        if self.failed:
            raise SecurityAbort(f"QRNG stopped: {self.failed}")
        n = _count(n)
        parts = [self._pool]
        have = self._pool.size
        while have < n:
            out = self._extract_batch()
            if out.size == 0:
                raise SecurityAbort("QRNG stopped: estimated min-entropy too low to extract any bit")
            parts.append(out)
            have += out.size
        pool = np.concatenate(parts)
        self._pool = pool[n:]
        return pool[:n]
