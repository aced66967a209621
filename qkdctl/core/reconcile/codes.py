"""LDPC parity-check matrices for reconciliation: degree distributions and PEG construction.

Degree distributions (edge perspective, variable side) for the family of rates 0.5-0.9
are those of Elkouss, Leverrier, Alleaume and Boutros, "Efficient reconciliation protocol
for discrete-variable QKD", ISIT 2009 (arXiv:0901.2140), density-evolution optimised for
the binary symmetric channel.  The paper prints the thresholds, not the polynomials; the
coefficients below are the edge fractions measured on the n = 4000 IPEG matrices built
from those polynomials and published with Kiktenko et al., PRA 96, 042317 (2017)
(RQC symmetric-reconciliation, codes_4000.txt), rounded to 3 digits; fractions of about
1 % or less are folded into the nearest kept degree, and the rate-0.5 row is simplified
further (4->3, 10-11->9, 14/17->15, 49->47, 55-66->57), so these are close relatives of
the published ensembles, not exact copies (their thresholds were not re-derived here).  Check degrees are left to PEG, which keeps them
concentrated (two adjacent values), as in the paper.  The row 0.93 is this project's own:
density evolution (Gaussian approximation, Chung, Richardson, Urbanke 2001) and a linear
programme over lambda for a shortened high-rate frame, by `benchmarks/ldpc_ensembles.py`.

The published Table I of that paper (thresholds and lambda(x), rho(x)) was checked against
these rows: for rates 0.55-0.9 they agree to rounding after normalisation (the printed
rate-0.85 coefficients sum to 1.05).  The family built from them (`FAMILY_RATES`, 0.50-0.90
in steps of 0.01, see `ensemble_of`) is denser than the table: a frame then needs little
puncturing or shortening to start at the wanted efficiency, and only the one or two codes a
key can use are built (`qkdctl.core.reconcile.ldpc.candidate_rates`).

Construction is progressive edge growth (Hu, Eleftheriou, Arnold, IEEE Trans. IT 51,
386 (2005)): variable nodes in order of increasing degree, each new edge to a check of
lowest degree among those farthest from the node in the current graph.  The breadth-first
search is limited to `max_depth` check layers so that a code of 2^16 columns takes
seconds; the first edge of every node and every edge whose search is cut short still never
closes a 4-cycle (girth >= 6 is guaranteed whenever a check outside the node's
depth-1 neighbourhood exists).

Puncturing order: untainted puncturing (Elkouss, Martinez-Mateo, Martin, IEEE WCL 1,
585 (2012)): punctured columns have pairwise disjoint check neighbourhoods, lowest
degree first, so the punctured submatrix has full column rank and each unrevealed
punctured (random) bit removes exactly one bit of syndrome leakage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numba import njit

from qkdctl.core.errors import QkdInputError

# rate -> ((variable degree, edge fraction), ...); see module docstring for the source.
DEGREE_DISTRIBUTIONS: dict[float, tuple[tuple[int, float], ...]] = {
    0.50: ((2, 0.145), (3, 0.209), (6, 0.047), (8, 0.054), (9, 0.069), (15, 0.208),
           (47, 0.015), (57, 0.253)),
    0.55: ((2, 0.169), (3, 0.210), (6, 0.181), (15, 0.038), (16, 0.027), (18, 0.234),
           (19, 0.058), (31, 0.083)),
    0.60: ((2, 0.111), (3, 0.209), (8, 0.142), (9, 0.149), (26, 0.145), (27, 0.090),
           (46, 0.008), (71, 0.146)),
    0.65: ((2, 0.105), (3, 0.157), (4, 0.081), (9, 0.122), (13, 0.105), (15, 0.116),
           (51, 0.314)),
    0.70: ((2, 0.053), (3, 0.294), (9, 0.165), (12, 0.121), (25, 0.198), (46, 0.095),
           (62, 0.028), (65, 0.046)),
    0.75: ((2, 0.108), (3, 0.110), (5, 0.138), (6, 0.107), (7, 0.053), (31, 0.486)),
    0.80: ((2, 0.094), (3, 0.181), (6, 0.120), (7, 0.085), (8, 0.098), (17, 0.072),
           (26, 0.350)),
    0.85: ((2, 0.043), (3, 0.195), (4, 0.056), (5, 0.090), (6, 0.081), (7, 0.011),
           (9, 0.049), (21, 0.475)),
    0.90: ((2, 0.077), (3, 0.281), (5, 0.089), (9, 0.196), (12, 0.306), (21, 0.050)),
    # not from Elkouss et al.: `python -m benchmarks.ldpc_ensembles --rates 0.9127
    # --max-degree 32 --shortened 0.233 --check-degrees 60 93 3` (semi-Gaussian DE + LP for a
    # rate-0.933 code with 23.3 % of its columns shortened, the 50,000-bit frame of a
    # 65536-column code at QBER 1 %); measured better than the rows above at rates 0.87-0.90
    # (docs/ldpc.md, "High-rate degree distributions")
    0.93: ((2, 0.067), (3, 0.208), (7, 0.045), (8, 0.289), (25, 0.029), (26, 0.362)),
}

# The family: design rates 0.50-0.90 in steps of 0.01, so a frame needs little puncturing or
# shortening.  Each family rate uses the variable-degree distribution named by the band it
# falls in (PEG sets the check degrees to the rate): (lowest rate of the band, tabulated rate).
# Measured at n = 65536 (one-shot BP, no puncturing or shortening): the tabulated rate-0.85
# ensemble (50 % of edges on degree-21 nodes) reaches the waterfall only at f ~ 1.15 (3 of 6
# frames fail at f = 1.13), while the rate-0.8 ensemble built at rate 0.85 decodes 4 of 4 at
# f = 1.13 (and at its own rate 4 of 4 at f = 1.085); at rate 0.9 the rate-0.8 ensemble is the
# worse one (ldpc-blind at QBER 1 %: 3 of 10 keys failed, against 0 of 3 with the rate-0.9
# ensemble).  Rates from 0.87 up use the optimised row 0.93: on the same 50,000-bit frames its
# codes decode at f 0.01-0.02 lower than the rate-0.8 row at rates 0.87-0.88 and 0.05 lower
# than the rate-0.9 row at 0.90, but 0.007 higher at 0.86 and 0.02 higher at 0.83, where
# the rate-0.8 row stays (a row optimised for rates 0.80-0.85 won on 50,000-bit frames but
# lost on the little-shortened frames of 1e6-bit keys; docs/ldpc.md, "High-rate degree
# distributions").
FAMILY_RATES: tuple[float, ...] = tuple(round(0.5 + 0.01 * i, 2) for i in range(41))
ENSEMBLE_BANDS: tuple[tuple[float, float], ...] = (
    (0.50, 0.50), (0.55, 0.55), (0.60, 0.60), (0.65, 0.65), (0.70, 0.70), (0.75, 0.75),
    (0.80, 0.80), (0.87, 0.93),
)


def ensemble_of(rate: float) -> tuple[tuple[int, float], ...]:
    """Variable-degree distribution (edge perspective) used for a family code of `rate`."""
    key = round(float(rate), 2)
    if key not in FAMILY_RATES or abs(float(rate) - key) > 1e-9:
        raise QkdInputError(f"no family code of rate {rate}; have {FAMILY_RATES}")
    band = max(b for b in ENSEMBLE_BANDS if b[0] <= key + 1e-9)
    return DEGREE_DISTRIBUTIONS[band[1]]


def ensemble_tag(rate: float) -> str:
    """Short digest of the degree distribution a family code of `rate` is built from.

    Code caches key on it, so a changed table row never loads a matrix built from the old one.
    """
    return hashlib.sha256(repr(ensemble_of(rate)).encode()).hexdigest()[:8]


PEG_MAX_DEPTH = 6  # check layers searched per new edge
PEG_BUDGET = 4096  # edge visits per layer expansion before the search is cut short


@dataclass(frozen=True)
class LdpcCode:
    """A parity-check matrix in both sparse orientations plus its puncturing order.

    `h` is the m x n CSR matrix over GF(2); `h_csc` the same in CSC;
    `puncture_order` lists untainted columns, lowest degree first; `fill_order` is a
    permutation of all columns with the untainted ones last (shortening takes columns from
    its front); `rate` the design rate (1 - m/n); `seed` the generator seed.
    """

    h: sp.csr_matrix
    h_csc: sp.csc_matrix
    puncture_order: np.ndarray
    fill_order: np.ndarray
    rate: float
    seed: int

    @property
    def n(self) -> int:
        """Code length (columns)."""
        return int(self.h.shape[1])

    @property
    def m(self) -> int:
        """Number of checks (syndrome bits per frame)."""
        return int(self.h.shape[0])


def variable_degrees(n: int, dist: tuple[tuple[int, float], ...]) -> np.ndarray:
    """Node degree sequence (nondecreasing, length n) realising an edge-perspective distribution.

    Node fractions are L_i = (lambda_i / i) / sum_j (lambda_j / j); counts are rounded by
    largest remainder so they sum to n.
    """
    if n <= 0:
        raise QkdInputError(f"code length n must be positive, got {n}")
    degs = np.array([d for d, _ in dist], dtype=np.int64)
    lam = np.array([w for _, w in dist], dtype=np.float64)
    if np.any(degs < 2) or np.any(lam < 0) or lam.sum() <= 0:
        raise QkdInputError("degree distribution needs degrees >= 2 and positive edge fractions")
    node_frac = (lam / degs) / np.sum(lam / degs)
    raw = node_frac * n
    counts = np.floor(raw).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return np.repeat(degs, counts)


@njit(cache=True)
def _peg_kernel(var_deg, m, max_depth, budget, tie_u, cap):  # pragma: no cover - compiled
    n = var_deg.shape[0]
    dv_max = 0
    for j in range(n):
        if var_deg[j] > dv_max:
            dv_max = var_deg[j]
    var_chk = np.full((n, dv_max), -1, np.int64)
    var_cnt = np.zeros(n, np.int64)
    chk_var = np.full((m, cap), -1, np.int64)
    chk_deg = np.zeros(m, np.int64)
    # degree buckets: bucket[d, :bsize[d]] holds the checks of current degree d
    bucket = np.zeros((cap + 1, m), np.int64)
    bsize = np.zeros(cap + 1, np.int64)
    bpos = np.zeros(m, np.int64)
    for c in range(m):
        bucket[0, c] = c
        bpos[c] = c
    bsize[0] = m
    c_stamp = np.zeros(m, np.int64)
    c_layer = np.zeros(m, np.int64)
    v_stamp = np.zeros(n, np.int64)
    frontier = np.zeros(m, np.int64)
    nxt = np.zeros(m, np.int64)
    stamp = 0
    e = 0
    for j in range(n):
        for k in range(var_deg[j]):
            stamp += 1
            layer_lim = -1  # candidates: checks not reached, or reached at layer > layer_lim
            if k > 0:
                nf = 0
                reached = 0
                for t in range(var_cnt[j]):
                    c = var_chk[j, t]
                    c_stamp[c] = stamp
                    c_layer[c] = 0
                    frontier[nf] = c
                    nf += 1
                    reached += 1
                v_stamp[j] = stamp
                layer = 0
                while True:
                    if layer + 1 > max_depth:
                        break
                    nn = 0
                    work = 0
                    for f in range(nf):
                        c = frontier[f]
                        for t in range(chk_deg[c]):
                            v = chk_var[c, t]
                            if v_stamp[v] == stamp:
                                continue
                            v_stamp[v] = stamp
                            work += var_cnt[v]
                            for u in range(var_cnt[v]):
                                c2 = var_chk[v, u]
                                if c_stamp[c2] != stamp:
                                    c_stamp[c2] = stamp
                                    c_layer[c2] = layer + 1
                                    nxt[nn] = c2
                                    nn += 1
                        if work > budget and layer >= 1:
                            break
                    if work > budget and layer >= 1:
                        layer_lim = layer  # search cut short: avoid only layers 0..layer
                        break
                    if nn == 0:
                        break  # the reachable set stopped growing
                    if reached + nn == m:
                        layer_lim = layer  # all covered: take the farthest layer
                        break
                    reached += nn
                    for f in range(nn):
                        frontier[f] = nxt[f]
                    nf = nn
                    layer += 1
            chosen = -1
            for d in range(cap + 1):
                size = bsize[d]
                if size == 0:
                    continue
                start = int(tie_u[e] * size)
                for i in range(size):
                    c = bucket[d, (start + i) % size]
                    if c_stamp[c] != stamp or (layer_lim >= 0 and c_layer[c] > layer_lim):
                        chosen = c
                        break
                if chosen >= 0:
                    break
            if chosen < 0 or chk_deg[chosen] >= cap:
                return var_chk, chk_var, chk_deg, False
            d = chk_deg[chosen]
            # move chosen from bucket d to bucket d + 1
            p = bpos[chosen]
            last = bucket[d, bsize[d] - 1]
            bucket[d, p] = last
            bpos[last] = p
            bsize[d] -= 1
            bucket[d + 1, bsize[d + 1]] = chosen
            bpos[chosen] = bsize[d + 1]
            bsize[d + 1] += 1
            var_chk[j, var_cnt[j]] = chosen
            var_cnt[j] += 1
            chk_var[chosen, chk_deg[chosen]] = j
            chk_deg[chosen] += 1
            e += 1
    return var_chk, chk_var, chk_deg, True


def peg_matrix(
    var_deg: np.ndarray,
    m: int,
    rng: np.random.Generator,
    max_depth: int = PEG_MAX_DEPTH,
    budget: int = PEG_BUDGET,
) -> sp.csr_matrix:
    """PEG parity-check matrix (m x n, CSR, uint8) for the given variable-node degrees.

    Ties between equally good checks are broken by `rng`; `max_depth` bounds the
    breadth-first search (check layers) and `budget` the edge visits of one layer
    expansion (a cut-short search avoids only the layers it completed; layer 0, the
    node's own checks, is always avoided, so no 4-cycle is ever closed while a check
    outside the node's distance-3 neighbourhood exists).
    """
    if not isinstance(rng, np.random.Generator):
        raise QkdInputError("rng must be a numpy.random.Generator")
    var_deg = np.ascontiguousarray(var_deg, dtype=np.int64)
    if var_deg.ndim != 1 or var_deg.size == 0:
        raise QkdInputError("var_deg must be a non-empty 1-D array of degrees")
    if m <= 0:
        raise QkdInputError(f"number of checks m must be positive, got {m}")
    if var_deg.min() < 1 or var_deg.max() > m:
        raise QkdInputError(f"variable degrees must lie in 1..m={m}")
    if max_depth < 1 or budget < 1:
        raise QkdInputError(f"max_depth and budget must be >= 1, got {max_depth}, {budget}")
    n_edges = int(var_deg.sum())
    tie_u = rng.random(n_edges)
    cap = int(np.ceil(n_edges / m)) + 8
    while True:
        var_chk, _, _, ok = _peg_kernel(var_deg, int(m), int(max_depth), int(budget), tie_u, cap)
        if ok:
            break
        cap *= 2
    rows = var_chk.ravel()
    cols = np.repeat(np.arange(var_deg.size), var_chk.shape[1])
    keep = rows >= 0
    data = np.ones(int(keep.sum()), dtype=np.uint8)
    return sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(int(m), var_deg.size))


@njit(cache=True)
def _untainted_kernel(indptr, indices, col_ptr, col_idx, order):  # pragma: no cover - compiled
    m = indptr.shape[0] - 1
    n = col_ptr.shape[0] - 1
    tainted = np.zeros(m, np.bool_)
    out = np.empty(n, np.int64)
    k = 0
    for i in range(order.shape[0]):
        v = order[i]
        ok = True
        for t in range(col_ptr[v], col_ptr[v + 1]):
            if tainted[col_idx[t]]:
                ok = False
                break
        if not ok:
            continue
        out[k] = v
        k += 1
        for t in range(col_ptr[v], col_ptr[v + 1]):
            tainted[col_idx[t]] = True
    return out[:k]


def untainted_puncture_order(h: sp.spmatrix, rng: np.random.Generator) -> np.ndarray:
    """Columns that may be punctured together: pairwise disjoint check sets, low degree first.

    Candidates are visited by increasing column degree, ties in an order drawn from `rng`;
    a column is kept if none of its checks touches an already kept column.
    """
    if not isinstance(rng, np.random.Generator):
        raise QkdInputError("rng must be a numpy.random.Generator")
    h_csr = sp.csr_matrix(h)
    h_csc = sp.csc_matrix(h)
    col_deg = np.diff(h_csc.indptr)
    perm = rng.permutation(h_csc.shape[1])
    order = perm[np.argsort(col_deg[perm], kind="stable")].astype(np.int64)
    return _untainted_kernel(
        h_csr.indptr.astype(np.int64), h_csr.indices.astype(np.int64),
        h_csc.indptr.astype(np.int64), h_csc.indices.astype(np.int64), order,
    )


def build_code(rate: float, n: int, seed: int, max_depth: int = PEG_MAX_DEPTH,
               dist: tuple[tuple[int, float], ...] | None = None) -> LdpcCode:
    """Build the family code of design `rate` (one of FAMILY_RATES) and length n.

    Deterministic in (rate, n, seed, max_depth), so both parties build the same matrix.
    `dist` replaces the family's degree distribution (`ensemble_of`), for comparing rows.
    """
    key = round(float(rate), 2)
    dist = ensemble_of(key) if dist is None else dist
    if not isinstance(n, (int, np.integer)) or n < 64:
        raise QkdInputError(f"code length n must be an integer >= 64, got {n!r}")
    rng = np.random.default_rng([int(seed), int(n), int(round(key * 100))])
    m = int(round(n * (1.0 - key)))
    degs = variable_degrees(int(n), dist)
    degs = np.minimum(degs, m)
    h = peg_matrix(degs, m, rng, max_depth)
    punct = untainted_puncture_order(h, rng)
    is_punct = np.zeros(n, dtype=bool)
    is_punct[punct] = True
    perm = rng.permutation(n)
    fill = np.concatenate([perm[~is_punct[perm]], perm[is_punct[perm]]]).astype(np.int64)
    return LdpcCode(h=h, h_csc=h.tocsc(), puncture_order=punct, fill_order=fill,
                    rate=key, seed=int(seed))
