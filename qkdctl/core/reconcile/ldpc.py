"""Syndrome-based LDPC reconciliation: frame layout, rate adaptation, syndromes, BP decoding.

A frame is one codeword of a family code (`qkdctl.core.reconcile.codes`) of n columns
and m checks.  Its columns hold k key bits, p punctured bits (Alice's private random
padding, unknown to Bob) and s shortened bits (value 0, known to both):  the effective
rate is (n - m - s) / (n - p - s) (Elkouss, Martinez-Mateo, Lancho, Martin, "Rate
compatible protocol for information reconciliation", ISIT 2010, arXiv:1006.2660).
Alice sends her syndrome H x_A; Bob builds y (his key bits, zeros elsewhere) and decodes
the error pattern e with H e = H y + H x_A by belief propagation (the `ldpc` package)
from channel priors q_est on key bits, 1/2 on punctured bits and ~0 on known bits.

Blind rounds (Martinez-Mateo, Elkouss, Martin, QIC 12, 791 (2012); symmetric-blind
choice of key positions after Kiktenko, Trushechkin, Lim, Kurochkin, Fedorov, PRA 96,
042317 (2017)): on failure Alice reveals more bits, punctured ones first (in the code's
puncture order), then the key bits Bob's failed decoding found least reliable.

Leakage of a frame: the syndrome bits plus the revealed bits, minus the punctured bits:
punctured columns are untainted (disjoint check sets), so the p random padding bits make
p syndrome bits independent of the key, and a revealed padding bit gives that bit back
(I(K; S, R) <= m - p + r).  Shortened bits carry no key and are not leaked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ldpc import BpDecoder
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile.codes import LdpcCode

KNOWN_BIT_ERROR_PROB = 1e-9  # prior of a shortened or revealed bit (BP needs 0 < p)
PUNCTURED_ERROR_PROB = 0.5


def binary_entropy(q: float) -> float:
    """h(q) in bits (0 at q = 0 or 1)."""
    if q <= 0.0 or q >= 1.0:
        return 0.0
    return float(-q * np.log2(q) - (1 - q) * np.log2(1 - q))


@dataclass(frozen=True)
class FrameLayout:
    """Where a frame's key, punctured and shortened bits sit in the codeword (column indices).

    `punct_pos` is in reveal order (the code's untainted puncture order).
    """

    code: LdpcCode
    key_pos: np.ndarray
    punct_pos: np.ndarray
    short_pos: np.ndarray

    @property
    def k(self) -> int:
        """Key bits carried by the frame."""
        return int(self.key_pos.size)


def frame_layout(code: LdpcCode, k: int, punct: int) -> FrameLayout:
    """Layout of a frame of `k` key bits and `punct` punctured bits on `code`; the rest is shortened.

    Punctured bits take the first `punct` columns of the puncture order; shortened bits the
    first columns of the code's fill order that are not punctured; key bits the others.
    """
    n = code.n
    if not 0 <= punct <= code.puncture_order.size:
        raise QkdInputError(f"punct={punct} outside 0..{code.puncture_order.size} for this code")
    if not 0 < k <= n - punct:
        raise QkdInputError(f"k={k} key bits do not fit a frame of {n} columns with {punct} punctured")
    punct_pos = code.puncture_order[:punct].astype(np.int64)
    taken = np.zeros(n, dtype=bool)
    taken[punct_pos] = True
    free = code.fill_order[~taken[code.fill_order]]
    short = n - punct - k
    return FrameLayout(code, np.sort(free[short:]).astype(np.int64), punct_pos,
                       np.sort(free[:short]).astype(np.int64))


def choose_layout(
    codes: dict[float, LdpcCode], k_max: int, qber_est: float, f_start: float,
    punct_fraction: float,
) -> FrameLayout:
    """Pick code and puncturing so the first decoding runs at efficiency `f_start`.

    With p punctured bits a frame of k key bits leaks m - p bits.  Per code, p is capped at
    min(punct_fraction * n, untainted columns); the key bits are k = (m - p) / (f_start
    h(qber_est)), at most k_max (the rest is shortened).  The code giving the most key bits
    wins, ties going to the smallest leak m - p (so a capped frame runs at the lowest f).
    """
    if not codes:
        raise QkdInputError("no LDPC codes given")
    if not 0.0 < qber_est < 0.5:
        raise QkdInputError(f"qber_est must lie in (0, 0.5), got {qber_est}")
    if f_start < 1.0 or not 0.0 <= punct_fraction < 1.0:
        raise QkdInputError(f"need f_start >= 1 and 0 <= punct_fraction < 1, got {f_start}, {punct_fraction}")
    if k_max <= 0:
        raise QkdInputError(f"k_max must be positive, got {k_max}")
    target = f_start * binary_entropy(qber_est)  # leaked bits per key bit
    best: tuple[int, int, float] | None = None
    for rate, code in codes.items():
        p_cap = min(int(punct_fraction * code.n), int(code.puncture_order.size))
        k = min(int((code.m - p_cap) / target), k_max)
        if k <= 0 or k + p_cap > code.n:
            continue  # the code's rate is too high for this QBER
        if best is None or (k, p_cap - code.m) > (best[0], best[1] - codes[best[2]].m):
            best = (k, p_cap, rate)
    if best is None:
        raise QkdInputError(f"no code of rates {sorted(codes)} reaches QBER {qber_est} at f={f_start}")
    k, p, rate = best
    return frame_layout(codes[rate], k, p)


@njit(cache=True)
def _syndrome_kernel(indptr, indices, bits):  # pragma: no cover - compiled
    m = indptr.shape[0] - 1
    out = np.zeros(m, np.uint8)
    for r in range(m):
        acc = 0
        for t in range(indptr[r], indptr[r + 1]):
            acc ^= bits[indices[t]]
        out[r] = acc
    return out


def syndrome(code: LdpcCode, frame_bits: np.ndarray) -> np.ndarray:
    """H x over GF(2) (uint8, length m) of a codeword-length bit array."""
    bits = np.ascontiguousarray(frame_bits, dtype=np.uint8)
    if bits.ndim != 1 or bits.size != code.n:
        raise QkdInputError(f"frame must be a 1-D array of {code.n} bits, got shape {bits.shape}")
    return _syndrome_kernel(code.h.indptr, code.h.indices, bits)


def frame_bits(layout: FrameLayout, key_bits: np.ndarray, pad_bits: np.ndarray) -> np.ndarray:
    """Codeword-length array: key bits at key columns, pad bits at punctured ones, 0 elsewhere."""
    key = np.asarray(key_bits)
    pad = np.asarray(pad_bits)
    if key.shape != (layout.k,) or pad.shape != (layout.punct_pos.size,):
        raise QkdInputError(
            f"frame needs {layout.k} key and {layout.punct_pos.size} pad bits, got {key.shape}, {pad.shape}"
        )
    out = np.zeros(layout.code.n, dtype=np.uint8)
    out[layout.key_pos] = key
    out[layout.punct_pos] = pad
    return out


def error_priors(layout: FrameLayout, qber_est: float, known_pos: np.ndarray) -> np.ndarray:
    """Per-column error probability for BP: q on key, 1/2 on punctured, ~0 on shortened/known."""
    probs = np.full(layout.code.n, KNOWN_BIT_ERROR_PROB)
    probs[layout.key_pos] = qber_est
    probs[layout.punct_pos] = PUNCTURED_ERROR_PROB
    probs[np.asarray(known_pos, dtype=np.int64)] = KNOWN_BIT_ERROR_PROB
    return probs


@dataclass
class DecodeResult:
    """Bob's estimate of e = x_A + y, whether BP met the syndrome, and the posterior LLRs."""

    error: np.ndarray
    converged: bool
    llr: np.ndarray
    iterations: int


class SyndromeDecoder:
    """Belief-propagation syndrome decoder for one code (ldpc.BpDecoder, optional OSD).

    `bp_method` "product_sum" or "minimum_sum"; `osd_order` >= 0 switches to BpOsdDecoder
    (OSD-CS of that order when BP fails), None keeps plain BP.
    """

    def __init__(self, code: LdpcCode, max_iter: int = 60, bp_method: str = "product_sum",
                 ms_scaling_factor: float = 1.0, osd_order: int | None = None) -> None:
        if max_iter <= 0:
            raise QkdInputError(f"max_iter must be positive, got {max_iter}")
        if bp_method not in ("product_sum", "minimum_sum"):
            raise QkdInputError(f"bp_method must be product_sum or minimum_sum, got {bp_method!r}")
        self.code = code
        self.osd = osd_order is not None
        kwargs = dict(error_rate=0.05, max_iter=int(max_iter), bp_method=bp_method,
                      ms_scaling_factor=float(ms_scaling_factor), schedule="parallel",
                      input_vector_type="syndrome")
        if self.osd:
            from ldpc import BpOsdDecoder

            self._dec = BpOsdDecoder(code.h, osd_method="OSD_CS", osd_order=int(osd_order), **kwargs)
        else:
            self._dec = BpDecoder(code.h, **kwargs)

    def decode(self, target: np.ndarray, priors: np.ndarray) -> DecodeResult:
        """Find e with H e = target (length m) given per-column error priors (length n)."""
        target = np.ascontiguousarray(target, dtype=np.uint8)
        if target.shape != (self.code.m,) or priors.shape != (self.code.n,):
            raise QkdInputError(f"target must have {self.code.m} bits and priors {self.code.n} values")
        self._dec.update_channel_probs(priors)
        err = np.asarray(self._dec.decode(target), dtype=np.uint8)
        ok = bool(np.array_equal(syndrome(self.code, err), target))
        llr = np.asarray(self._dec.log_prob_ratios, dtype=np.float64)
        return DecodeResult(err, ok, llr, int(self._dec.iter))


def reveal_positions(layout: FrameLayout, revealed: np.ndarray, llr: np.ndarray, count: int) -> np.ndarray:
    """Next `count` columns to reveal: unrevealed punctured ones first, then key columns of least |LLR|.

    `revealed` is a boolean mask over the codeword of columns already known to Bob.
    """
    if count <= 0:
        raise QkdInputError(f"count must be positive, got {count}")
    punct = layout.punct_pos[~revealed[layout.punct_pos]]
    chosen = punct[:count]
    rest = count - chosen.size
    if rest > 0:
        keys = layout.key_pos[~revealed[layout.key_pos]]
        order = np.argsort(np.abs(llr[keys]), kind="stable")
        chosen = np.concatenate([chosen, keys[order[:rest]]])
    return chosen.astype(np.int64)
