"""Syndrome-based LDPC reconciliation: frame layout, rate adaptation, syndromes, BP decoding.

A frame is one codeword of a family code (`qkdctl.core.reconcile.codes`) of n columns
and m checks.  Its columns hold k key bits, p punctured bits (Alice's private random
padding, unknown to Bob) and s shortened bits (value 0, known to both):  the effective
rate is (n - m - s) / (n - p - s) (Elkouss, Martinez-Mateo, Lancho, Martin, "Rate
compatible protocol for information reconciliation", ISIT 2010, arXiv:1006.2660).
Alice sends her syndrome H x_A; Bob builds y (his key bits, zeros elsewhere) and decodes
the error pattern e with H e = H y + H x_A by belief propagation (the `ldpc` package)
from channel priors q_est on key bits, 1/2 on punctured bits and ~0 on known bits.

Decoders: a numba row-layered belief propagation (sum-product in the sign/magnitude log
domain, phi(x) = -log tanh(x/2) looked up in a table indexed by the float32 bits of x, so a
check of degree d costs 2d lookups; or scaled min-sum), float32 messages in check-major
(CSR) order, stopping when the hard decisions meet the syndrome (counted during the sweep,
confirmed by one exact check); several frames decode at once, one numba thread per frame
(`decode_many`, parallel=True: it uses every core numba is given).  It converges in about
half the iterations of the flooding `ldpc.BpDecoder`, which stays available as backend
"ldpc" (with BpOsdDecoder for OSD).  Measured here: OSD does not
help reconciliation - on frames where BP fails it returns some solution of H e = s, not
Bob's error pattern (so it also hides the failure), at 30-60x the decoding time - so the
protocol does not use it.  Scaled min-sum fails on these codes (check degrees 10-50) at
efficiencies where sum-product succeeds.

Blind rounds (Martinez-Mateo, Elkouss, Martin, QIC 12, 791 (2012); symmetric-blind
choice of key positions after Kiktenko, Trushechkin, Lim, Kurochkin, Fedorov, PRA 96,
042317 (2017)): on failure Alice reveals more bits, punctured ones first (in the code's
puncture order), then the key bits Bob's failed decoding found least reliable; Bob's
decoder resumes from the failed round's messages with the revealed error bits known.

Leakage of a frame: the syndrome bits plus the revealed bits, minus the punctured bits:
punctured columns are untainted (disjoint check sets), so the p random padding bits make
p syndrome bits independent of the key, and a revealed padding bit gives that bit back
(I(K; S, R) <= m - p + r).  Shortened bits carry no key and are not leaked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ldpc import BpDecoder
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile.codes import LdpcCode

KNOWN_BIT_ERROR_PROB = 1e-9  # prior of a shortened or revealed bit (BP needs 0 < p)
PUNCTURED_ERROR_PROB = 0.5
LEAK_TIE = 1.005  # layouts within 0.5 % of the least leak count as equally efficient
# punctured bits per frame at most this share of the checks: beyond it BP stalls (measured:
# rate-0.9 code at QBER 1 %, 2 x 50000 key bits with 32 % of m punctured failed 8 in 10 keys)
MAX_PUNCT_SHARE = 0.25


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
    codes: dict[float, LdpcCode], n_key: int, qber_est: float, f_start: float,
    punct_fraction: float, key_share: float = 1.0,
) -> FrameLayout:
    """Pick code, frame size and puncturing for `n_key` key bits so decoding starts near `f_start`.

    A frame with p punctured bits leaks m - p bits.  Per code, the puncturable columns are the
    untainted ones, at most MAX_PUNCT_SHARE m of them; with p_cap = min(punct_fraction n,
    puncturable), a frame holds up to k_full = (m - p_cap) / (f_start h(qber_est)) key bits;
    the key is cut into F = ceil(n_key / k_full) equal frames of k = ceil(n_key / F)
    bits, and p is raised (up to all puncturable columns) towards m - f_start k h so that
    smaller frames still start near f_start; the rest is shortened.  `key_share` caps k_full
    at that share of the code length (more, shorter-filled frames: a code family decodes
    best near the shortening it was designed for).  Among the codes whose
    total leak F (m - p) is within LEAK_TIE of the least, the one with fewest frames wins
    (less decoding work), then the one with fewest punctured bits (puncturing slows BP).  Returns the layout of
    one full frame (the last frame holds n_key - (F - 1) k key bits).
    """
    if not codes:
        raise QkdInputError("no LDPC codes given")
    if not 0.0 < qber_est < 0.5:
        raise QkdInputError(f"qber_est must lie in (0, 0.5), got {qber_est}")
    if f_start < 1.0 or not 0.0 <= punct_fraction < 1.0:
        raise QkdInputError(f"need f_start >= 1 and 0 <= punct_fraction < 1, got {f_start}, {punct_fraction}")
    if not 0.0 < key_share <= 1.0:
        raise QkdInputError(f"key_share must lie in (0, 1], got {key_share}")
    if n_key <= 0:
        raise QkdInputError(f"n_key must be positive, got {n_key}")
    target = f_start * binary_entropy(qber_est)  # leaked bits per key bit
    cands: list[tuple[int, int, int, int, float]] = []
    for rate, code in codes.items():
        untainted = min(int(code.puncture_order.size), int(MAX_PUNCT_SHARE * code.m))
        p_cap = min(int(punct_fraction * code.n), untainted)
        k_full = min(int((code.m - p_cap) / target), code.n - p_cap, int(key_share * code.n))
        if k_full <= 0:
            continue  # the code's rate is too high for this QBER
        frames = -(-n_key // k_full)
        k = -(-n_key // frames)
        p = min(untainted, max(p_cap, int(np.ceil(code.m - target * k))), code.n - k)
        cands.append((frames * (code.m - p), frames, p, k, rate))
    if not cands:
        raise QkdInputError(f"no code of rates {sorted(codes)} reaches QBER {qber_est} at f={f_start}")
    least = min(c[0] for c in cands)
    _, _, p, k, rate = min((c for c in cands if c[0] <= LEAK_TIE * least), key=lambda c: (c[1], c[2]))
    return frame_layout(codes[rate], k, p)


def frame_split(n_key: int, frame_n: int, key_share: float = 1.0) -> tuple[int, int]:
    """(F, k): `n_key` key bits cut into F = ceil(n_key / (key_share frame_n)) frames of
    k = ceil(n_key / F) key bits, the cut `candidate_rates` assumes for frames of `frame_n`."""
    frames = -(-n_key // max(1, int(key_share * frame_n)))
    return frames, -(-n_key // frames)


def candidate_rates(rates: tuple[float, ...], frame_n: int, n_key: int, qber_est: float,
                    f_start: float, key_share: float = 1.0) -> list[float]:
    """The (at most two) family rates `choose_layout` can pick for this key: build only these.

    With F = ceil(n_key / (key_share frame_n)) frames of k = ceil(n_key / F) key bits, a code starts at
    f_start with the fewest frames and least puncturing when its rate is the largest one not
    above r* = 1 - f_start h(qber_est) k / frame_n (the rest of the frame is shortened); the
    next lower rate is kept as a fallback for when the puncturing cap or rounding rules the
    first out.  Below every rate (QBER too high for one frame per frame_n) the lowest two.
    """
    if not rates or frame_n <= 0 or n_key <= 0:
        raise QkdInputError(f"need rates, frame_n > 0 and n_key > 0, got {rates}, {frame_n}, {n_key}")
    _, k = frame_split(n_key, frame_n, key_share)
    r_star = 1.0 - f_start * binary_entropy(qber_est) * k / frame_n
    ordered = sorted(rates)
    below = [r for r in ordered if r <= r_star + 1e-9]
    return below[-2:] if below else ordered[:2]


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


def error_priors(layout: FrameLayout, qber_est: float, known_pos: np.ndarray | None = None,
                 known_err: np.ndarray | None = None) -> np.ndarray:
    """Per-column prior P(e = 1) for BP: q on key bits, 1/2 on punctured, ~0 on shortened.

    Columns in `known_pos` (revealed by Alice) get ~0 or ~1 from `known_err`, the known
    error bits x_A + y there (Bob keeps his own y and the syndrome target unchanged).
    """
    probs = np.full(layout.code.n, KNOWN_BIT_ERROR_PROB)
    probs[layout.key_pos] = qber_est
    probs[layout.punct_pos] = PUNCTURED_ERROR_PROB
    if known_pos is not None and len(known_pos):
        known_err = np.asarray(known_err, dtype=np.uint8)
        if known_err.shape != np.shape(known_pos):
            raise QkdInputError("known_err must match known_pos")
        probs[np.asarray(known_pos, dtype=np.int64)] = np.where(
            known_err == 1, 1.0 - KNOWN_BIT_ERROR_PROB, KNOWN_BIT_ERROR_PROB)
    return probs


@dataclass
class DecodeResult:
    """Bob's estimate of e = x_A + y, whether BP met the syndrome, the posterior LLRs, and
    the check-to-variable messages (`state`, layered backend) to resume from."""

    error: np.ndarray
    converged: bool
    llr: np.ndarray
    iterations: int
    state: np.ndarray | None = None


LLR_CLIP = 30.0  # |prior LLR| cap of the layered decoder (float32)


PHI_MANT_BITS = 7  # mantissa bits of |x| that index the phi table (bins 2^-7 wide, relative)
PHI_MIN_EXP = -20  # table covers 2^-20 <= x < 2^6; below: phi(2^-20), above: ~0
PHI_MAX_EXP = 6


def phi_table() -> np.ndarray:
    """phi(x) = -log(tanh(x/2)) per float32 bit-pattern bin of x (float32).

    Bin i covers the floats whose exponent and top PHI_MANT_BITS mantissa bits are
    (PHI_MIN_EXP + i >> M, i & (2^M - 1)); its value is phi at the bin's geometric centre.
    Indexing by the float's bits makes the grid logarithmic, fine where phi is steep (x -> 0).
    """
    i = np.arange((PHI_MAX_EXP - PHI_MIN_EXP) << PHI_MANT_BITS)
    scale = 2.0 ** (PHI_MIN_EXP + (i >> PHI_MANT_BITS))
    frac = (i & ((1 << PHI_MANT_BITS) - 1)) / float(1 << PHI_MANT_BITS)
    x = scale * np.sqrt((1 + frac) * (1 + frac + 2.0 ** -PHI_MANT_BITS))
    return (-np.log(np.tanh(x / 2))).astype(np.float32)


_PHI_OFFSET = (127 + PHI_MIN_EXP) << PHI_MANT_BITS  # biased-exponent bits of the first bin


def _float_bits(x):
    """The IEEE-754 bits of a float32 as int32 (compiled code: a register bitcast, below)."""
    return int(np.array([x], np.float32).view(np.int32)[0])


@intrinsic
def _bitcast_f32_i32(typingctx, x):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@overload(_float_bits)
def _float_bits_compiled(x):  # pragma: no cover - compiled
    return lambda x: _bitcast_f32_i32(x)


@njit(cache=True, inline="always")
def _phi_index(bits, last):  # pragma: no cover - compiled
    i = (bits >> (23 - PHI_MANT_BITS)) - _PHI_OFFSET
    return min(max(i, 0), last)


@njit(cache=True, fastmath=True)
def _layered_frame_kernel(indptr, indices, target, llr0, r_msg, max_iter, stall_iter, alpha,
                          sum_product, table, q_buf, f_buf, post, err):  # pragma: no cover
    # Row-layered BP of one frame; post/err are outputs, r_msg is updated in place.
    # q_buf, f_buf: float32 scratch of the largest check degree (q and phi(|q|) per edge).
    m = indptr.shape[0] - 1
    n = llr0.shape[0]
    last = table.shape[0] - 1
    for v in range(n):
        post[v] = llr0[v]
    for c in range(m):  # resume: posterior = prior + incoming check messages
        for t in range(indptr[c], indptr[c + 1]):
            post[indices[t]] += r_msg[t]
    best_unsat = m + 1
    best_it = 0
    for it in range(1, max_iter + 1):
        unsat = 0  # checks unsatisfied by the hard decisions as the sweep meets them
        for c in range(m):
            lo = indptr[c]
            d = indptr[c + 1] - lo
            neg = np.int32(target[c])
            hard = np.int32(target[c])
            if sum_product:
                total = np.float32(0.0)
                for j in range(d):
                    p = post[indices[lo + j]]
                    hard ^= np.int32(p < 0)
                    q = p - r_msg[lo + j]
                    q_buf[j] = q
                    neg ^= np.int32(q < 0)
                    f = table[_phi_index(_float_bits(abs(q)), last)]
                    f_buf[j] = f
                    total += f
                for j in range(d):
                    q = q_buf[j]
                    mag = table[_phi_index(_float_bits(total - f_buf[j]), last)]
                    r = -mag if (neg ^ np.int32(q < 0)) else mag
                    r_msg[lo + j] = r
                    post[indices[lo + j]] = q + r
            else:
                min1 = np.float32(1e30)
                min2 = np.float32(1e30)
                arg = -1
                for j in range(d):
                    p = post[indices[lo + j]]
                    hard ^= np.int32(p < 0)
                    q = p - r_msg[lo + j]
                    q_buf[j] = q
                    neg ^= np.int32(q < 0)
                    a = abs(q)
                    if a < min1:
                        min2 = min1
                        min1 = a
                        arg = j
                    elif a < min2:
                        min2 = a
                for j in range(d):
                    q = q_buf[j]
                    mag = alpha * (min2 if j == arg else min1)
                    r = -mag if (neg ^ np.int32(q < 0)) else mag
                    r_msg[lo + j] = r
                    post[indices[lo + j]] = q + r
            unsat += hard
        if unsat == 0:  # confirm on the final hard decisions
            for v in range(n):
                err[v] = 1 if post[v] < 0 else 0
            ok = True
            for c in range(m):
                acc = target[c]
                for t in range(indptr[c], indptr[c + 1]):
                    acc ^= err[indices[t]]
                if acc:
                    ok = False
                    break
            if ok:
                return it, True
        if unsat < best_unsat:
            best_unsat = unsat
            best_it = it
        elif it - best_it >= stall_iter:
            for v in range(n):
                err[v] = 1 if post[v] < 0 else 0
            return it, False  # no progress: give up early
    for v in range(n):
        err[v] = 1 if post[v] < 0 else 0
    return max_iter, False


@njit(cache=True, parallel=True)
def _layered_batch_kernel(indptr, indices, targets, llr0, r_msg, max_iter, stall_iter, alpha,
                          sum_product, table, max_deg, post, err, its, ok):  # pragma: no cover
    for f in prange(targets.shape[0]):
        q_buf = np.empty(max_deg, np.float32)
        f_buf = np.empty(max_deg, np.float32)
        its[f], ok[f] = _layered_frame_kernel(
            indptr, indices, targets[f], llr0[f], r_msg[f], max_iter, stall_iter, alpha,
            sum_product, table, q_buf, f_buf, post[f], err[f])


_PHI = phi_table()


def _prior_llr(priors: np.ndarray) -> np.ndarray:
    p = np.clip(priors, 1e-300, 1.0)
    llr = np.log1p(-np.minimum(p, 1 - 1e-16)) - np.log(p)
    return np.clip(llr, -LLR_CLIP, LLR_CLIP).astype(np.float32)


class SyndromeDecoder:
    """Syndrome decoder for one code: layered normalised min-sum (numba) or the `ldpc` package.

    backend "layered" (default): row-layered belief propagation, sum-product with a
    tabulated phi (`bp_method` "product_sum") or min-sum scaled by `alpha`; stops as soon as
    the hard decision meets the syndrome, or gives up when the number of unsatisfied checks
    has not improved for `stall_iter` iterations.  backend "ldpc": ldpc.BpDecoder (`bp_method`
    "product_sum" or "minimum_sum", flooding), or ldpc.BpOsdDecoder when `osd_order` is
    given (OSD-CS of that order after a BP failure).

    `columns` (layered backend): the code columns that take part in decoding; the others are
    known to carry no error (a frame's shortened bits) and are left out of the graph, so no
    work is spent on their edges (BP is unchanged: a known bit's messages carry only its sign,
    which is +).  Results are still over all n columns (error 0 on the left-out ones).
    """

    def __init__(self, code: LdpcCode, max_iter: int = 60, backend: str = "layered",
                 alpha: float = 0.8, bp_method: str = "product_sum",
                 osd_order: int | None = None, stall_iter: int = 12,
                 columns: np.ndarray | None = None) -> None:
        if max_iter <= 0:
            raise QkdInputError(f"max_iter must be positive, got {max_iter}")
        if backend not in ("layered", "ldpc"):
            raise QkdInputError(f"backend must be 'layered' or 'ldpc', got {backend!r}")
        if bp_method not in ("product_sum", "minimum_sum"):
            raise QkdInputError(f"bp_method must be product_sum or minimum_sum, got {bp_method!r}")
        if not 0.0 < alpha <= 1.0:
            raise QkdInputError(f"alpha must lie in (0, 1], got {alpha}")
        self.code = code
        self.backend = backend
        self.max_iter = int(max_iter)
        self.stall_iter = int(max(1, stall_iter))
        self.alpha = np.float32(alpha)
        self.sum_product = bp_method == "product_sum"
        h = code.h
        self._columns = None
        if columns is not None:
            if backend != "layered":
                raise QkdInputError("columns needs the layered backend")
            cols = np.asarray(columns, dtype=np.int64)
            if cols.ndim != 1 or cols.size == 0 or np.any(np.diff(cols) <= 0) or cols[0] < 0 \
                    or cols[-1] >= code.n:
                raise QkdInputError(f"columns must be increasing column indices in 0..{code.n - 1}")
            self._columns = cols
            h = code.h[:, cols].tocsr()
            h.sort_indices()
        self._indptr = h.indptr.astype(np.int64)
        # column indices in 16 bits when they fit (<= 65536 columns): less memory traffic per edge
        self._indices = h.indices.astype(np.uint16 if h.shape[1] <= 1 << 16 else np.int32)
        self._n_graph = int(h.shape[1])
        self._max_deg = int(np.diff(self._indptr).max())
        self._dec = None
        if backend == "ldpc":
            kwargs = dict(error_rate=0.05, max_iter=self.max_iter, bp_method=bp_method,
                          schedule="parallel", input_vector_type="syndrome")
            if osd_order is not None:
                from ldpc import BpOsdDecoder

                self._dec = BpOsdDecoder(code.h, osd_method="OSD_CS", osd_order=int(osd_order), **kwargs)
            else:
                self._dec = BpDecoder(code.h, **kwargs)

    def decode(self, target: np.ndarray, priors: np.ndarray,
               state: np.ndarray | None = None) -> DecodeResult:
        """Find e with H e = target (length m) given per-column error priors (length n).

        `state` (layered backend): the messages of an earlier decoding of the same target
        to resume from (a blind round after new priors); it is updated in place.
        """
        if self._dec is None:
            return self.decode_many([target], [priors], [state])[0]
        target, priors = self._checked(target, priors)
        self._dec.update_channel_probs(priors)
        err = np.asarray(self._dec.decode(target), dtype=np.uint8)
        ok = bool(np.array_equal(syndrome(self.code, err), target))
        llr = np.asarray(self._dec.log_prob_ratios, dtype=np.float64)
        return DecodeResult(err, ok, llr, int(self._dec.iter))

    def decode_many(self, targets: list[np.ndarray], priors: list[np.ndarray],
                    states: list[np.ndarray | None] | None = None) -> list[DecodeResult]:
        """Decode several frames of this code at once (layered backend: one numba thread per frame).

        Same as `decode` per frame; frames are independent, so the results do not depend on
        the number of threads.  Each result's `state` holds its messages (the given state
        array, updated in place, when one was passed).
        """
        if self._dec is not None:
            raise QkdInputError("decode_many needs the layered backend")
        count = len(targets)
        states = [None] * count if states is None else list(states)
        if len(priors) != count or len(states) != count or count == 0:
            raise QkdInputError("decode_many needs equally many (>= 1) targets, priors and states")
        n, m, e = self._n_graph, self.code.m, self._indices.size
        t_arr = np.empty((count, m), np.uint8)
        llr0 = np.empty((count, n), np.float32)
        msgs = np.zeros((count, e), np.float32)
        full_llr = []
        for i in range(count):
            t_arr[i], p = self._checked(targets[i], priors[i])
            full_llr.append(_prior_llr(p))
            llr0[i] = full_llr[i] if self._columns is None else full_llr[i][self._columns]
            if states[i] is not None:
                if states[i].shape != (e,) or states[i].dtype != np.float32:
                    raise QkdInputError(f"state must be float32 of length {e}")
                msgs[i] = states[i]
        post = np.empty((count, n), np.float32)
        err = np.empty((count, n), np.uint8)
        its = np.zeros(count, np.int64)
        ok = np.zeros(count, np.bool_)
        if count == 1:  # no thread team for one frame
            its[0], ok[0] = _layered_frame_kernel(
                self._indptr, self._indices, t_arr[0], llr0[0], msgs[0], self.max_iter,
                self.stall_iter, self.alpha, self.sum_product, _PHI,
                np.empty(self._max_deg, np.float32), np.empty(self._max_deg, np.float32), post[0], err[0])
        else:
            _layered_batch_kernel(self._indptr, self._indices, t_arr, llr0, msgs, self.max_iter,
                                  self.stall_iter, self.alpha, self.sum_product, _PHI,
                                  self._max_deg, post, err, its, ok)
        out = []
        for i in range(count):
            state = msgs[i]
            if states[i] is not None:
                states[i][:] = msgs[i]
                state = states[i]
            if self._columns is None:
                err_i, post_i = err[i], post[i].astype(np.float64)
            else:
                err_i = np.zeros(self.code.n, np.uint8)
                err_i[self._columns] = err[i]
                post_i = full_llr[i].astype(np.float64)
                post_i[self._columns] = post[i]
            out.append(DecodeResult(err_i, bool(ok[i]), post_i, int(its[i]), state))
        return out

    def _checked(self, target: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        target = np.ascontiguousarray(target, dtype=np.uint8)
        priors = np.asarray(priors, dtype=np.float64)
        if target.shape != (self.code.m,) or priors.shape != (self.code.n,):
            raise QkdInputError(f"target must have {self.code.m} bits and priors {self.code.n} values")
        return target, priors


def _least_first(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` least values in stable-argsort order (value, then index),
    by a partition instead of a full sort."""
    if count >= values.size:
        return np.argsort(values, kind="stable")
    kth = np.partition(values, count - 1)[count - 1]
    below = np.flatnonzero(values < kth)
    ties = np.flatnonzero(values == kth)[:count - below.size]
    sel = np.sort(np.concatenate([below, ties]))
    return sel[np.argsort(values[sel], kind="stable")]


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
        chosen = np.concatenate([chosen, keys[_least_first(np.abs(llr[keys]), rest)]])
    return chosen.astype(np.int64)
