"""Privacy amplification throughput (Mbit/s of key input; size in Mbit), out_len = n / 2.

Ours: `toeplitz_hash_packed` (exact GF(2) product: ternary FFT above 64 kbit).
Baseline: the straightforward float Toeplitz product with numpy.fft (power-of-two
linear convolution of seed and key, round, mod 2), timed in the same run.  At
n = 1e8 the baseline would need ~8 GB, so it is timed at n = 1e7 and its
seconds scaled linearly to 1e8 (which favours the baseline); the result says so.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import best_seconds, result
from qkdctl.core.amplify import toeplitz_hash_packed
from qkdctl.core.gf2 import unpack_bits, words_for_bits
from qkdctl.core.gf2_fft import plan_cyclic

QUICK_SIZES = (1_000_000,)
FULL_SIZES = (1_000_000, 10_000_000, 100_000_000)
BASELINE_MAX_N = 10_000_000
OUT_RATIO = 0.5


def numpy_fft_toeplitz(key_bits: np.ndarray, seed_bits: np.ndarray, out_len: int) -> np.ndarray:
    """Baseline: T[i, j] = seed[i - j + n - 1] product by float FFT convolution, round, mod 2."""
    n = key_bits.size
    size = 1 << int(np.ceil(np.log2(n + seed_bits.size - 1)))
    conv = np.fft.irfft(
        np.fft.rfft(seed_bits.astype(np.float64), size) * np.fft.rfft(key_bits.astype(np.float64), size),
        size,
    )
    return (np.rint(conv[n - 1 : n - 1 + out_len]).astype(np.int64) & 1).astype(np.uint8)


def _random_words(rng: np.random.Generator, n_bits: int) -> np.ndarray:
    return rng.integers(0, 2**64, size=words_for_bits(n_bits), dtype=np.uint64)


def run(quick: bool) -> list[dict]:
    """Time ours and the numpy.fft baseline at each size; check they agree bit for bit."""
    rng = np.random.default_rng(2026)
    results = []
    baseline_rate = {}
    for n in QUICK_SIZES if quick else FULL_SIZES:
        out_len = int(OUT_RATIO * n)
        key = _random_words(rng, n)
        seed = _random_words(rng, n + out_len - 1)
        repeats = 7 if n <= 1_000_000 else (3 if n <= 10_000_000 else 1)
        ours = best_seconds(lambda: toeplitz_hash_packed(key, n, seed, out_len), repeats=repeats)
        extra = {"out_len": out_len, "plan": repr(plan_cyclic(n + out_len - 1))}
        if n <= BASELINE_MAX_N:
            key_bits = unpack_bits(key, n)
            seed_bits = unpack_bits(seed, n + out_len - 1)
            base = best_seconds(lambda: numpy_fft_toeplitz(key_bits, seed_bits, out_len), repeats=1)
            expected = numpy_fft_toeplitz(key_bits, seed_bits, out_len)
            got = unpack_bits(toeplitz_hash_packed(key, n, seed, out_len), out_len)
            extra["agrees_with_baseline"] = bool(np.array_equal(got, expected))
            baseline_rate[n] = n / base
            extra["baseline_size"] = n
        else:
            ref_n = max(baseline_rate)
            base = n / baseline_rate[ref_n]
            extra["baseline_size"] = ref_n
            extra["baseline_note"] = f"numpy.fft timed at n={ref_n}, seconds scaled linearly"
        results.append(
            result(f"toeplitz_pa_n{n:.0e}", n / 1e6, ours, "Mbit/s", "numpy.fft float Toeplitz",
                   base, n_bits=n, seconds_baseline=base, **extra)
        )
    return results
