"""Quasi-cyclic LDPC codes: a PEG base graph lifted by circulant permutations of size Z.

The base (proto) matrix has nb = n / Z columns and mb = round(nb (1 - rate)) rows; its
variable degrees come from the same ensembles as the PEG family
(`codes.ensemble_of` / `codes.variable_degrees`) and its edges from `codes.peg_matrix`
on the base graph.  Each base edge (i, j) becomes a Z x Z circulant permutation with shift
s = P[i, j]: check i Z + t meets variable j Z + (t + s) mod Z.  So every base row is a
layer of Z checks that share no variable, and a layered decoder can work on the Z checks
of a layer at once (`qkdctl.core.reconcile.qc_decoder`).

Shifts are chosen edge by edge, columns of highest degree first, as in the circulant PEG
of Li and Kumar ("A class of good quasi-cyclic LDPC codes based on progressive edge growth
graph", Asilomar 2004), with the cycle conditions of Fossorier ("Quasi-cyclic LDPC codes
from circulant permutation matrices", IEEE Trans. IT 50, 1788 (2004)): a base cycle
i1 j1 i2 j2 ... lifts to cycles of the same length iff the alternating sum of its shifts is
0 mod Z.  Each new edge takes the shift that closes the fewest lifted 4-cycles, then the
fewest 6-cycles, with the already placed edges (ties broken by the generator).  While some edge had no
4-cycle-free shift, the assignment is redone with fresh orders (up to SHIFT_ATTEMPTS times)
and the best kept; the number of edges that still close a 4-cycle is kept (`four_cycles`).
Between the two criteria comes one against light codewords: degree-2 columns (71 of 256 at
rate 0.88, on 31 base rows) must form cycles in the base graph, and a cycle of L of them
whose alternating shift sum is t lifts to cycles of L Z / gcd(t, Z) degree-2 columns, each
a codeword of that weight (a QC code with Z = 256 and t = 128 has words of weight 2L);
among the shifts that close no 4-cycle, the one whose lightest such word (over cycles of up
to DEG2_CYCLE_LEN base columns) is heaviest is taken, weights from MIN_DEG2_WEIGHT up
counting as equal.  (Found by a key of the first measurement that
BP "decoded" to Alice's word plus a weight-10 codeword; verification caught it.)

Rate adaptation works on blocks: the puncture order holds whole base columns with pairwise
disjoint base-row sets (untainted: each check meets at most one punctured column), lowest
degree first; the fill order (shortening takes its front) lists whole blocks in an order
where every prefix keeps the degree mix of the base graph, punctured blocks last, so a
frame's shortened columns fill whole blocks that the decoder leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.reconcile.codes import LdpcCode, ensemble_of, peg_matrix, variable_degrees


SHIFT_ATTEMPTS = 8  # shift assignments tried (fresh orders) while some edge closes a 4-cycle
DEG2_CYCLE_LEN = 8  # cycles of degree-2 base columns checked up to this many columns
MIN_DEG2_WEIGHT = 128  # lifted degree-2 codewords at least this heavy count as harmless


@dataclass(frozen=True)
class QcLdpcCode(LdpcCode):
    """An LdpcCode whose matrix is the lift of `shifts` (mb x nb, -1 = zero block) by `z`."""

    z: int
    shifts: np.ndarray
    four_cycles: int


def lifted_matrix(shifts: np.ndarray, z: int) -> sp.csr_matrix:
    """H (mb z x nb z, CSR, uint8) of a base matrix of circulant shifts (-1 = zero block)."""
    shifts = np.asarray(shifts)
    if shifts.ndim != 2 or z <= 0 or shifts.max(initial=-1) >= z or shifts.min(initial=-1) < -1:
        raise QkdInputError(f"shifts must be a 2-D array of -1 or 0..{z - 1}, with z > 0")
    bi, bj = np.nonzero(shifts >= 0)
    t = np.arange(z)
    rows = (bi[:, None] * z + t[None, :]).ravel()
    cols = (bj[:, None] * z + (t[None, :] + shifts[bi, bj][:, None]) % z).ravel()
    mb, nb = shifts.shape
    h = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols)), shape=(mb * z, nb * z))
    h.sort_indices()
    return h


@njit(cache=True, nogil=True)
def _qc_syndrome_kernel(shifts, z, bits):  # pragma: no cover - compiled
    # check i z + t XORs bit j z + (t + s) mod z of every base edge (i, j) of shift s: per
    # edge, two contiguous runs of lanes (views from 0, so LLVM vectorises the loops)
    mb, nb = shifts.shape
    out = np.zeros(mb * z, np.uint8)
    for i in range(mb):
        row = out[i * z:(i + 1) * z]
        for j in range(nb):
            s = shifts[i, j]
            if s < 0:
                continue
            w = z - s
            head = bits[j * z + s:(j + 1) * z]
            tail = bits[j * z:j * z + s]
            row_tail = row[w:]
            for t in range(w):
                row[t] ^= head[t]
            for t in range(s):
                row_tail[t] ^= tail[t]
    return out


def qc_syndrome(code: QcLdpcCode, frame_bits: np.ndarray) -> np.ndarray:
    """H x over GF(2) (uint8, length m) of a codeword-length bit array, by circulant blocks.

    Same result as `ldpc.syndrome` on the lifted matrix, ~z times fewer index reads."""
    bits = np.ascontiguousarray(frame_bits, dtype=np.uint8)
    if bits.ndim != 1 or bits.size != code.n:
        raise QkdInputError(f"frame must be a 1-D array of {code.n} bits, got shape {bits.shape}")
    return _qc_syndrome_kernel(np.ascontiguousarray(code.shifts, dtype=np.int64), int(code.z), bits)


@njit(cache=True)
def _shift_kernel(present, col_order, z, tie_u, max_len, min_weight):  # pragma: no cover - compiled
    # present: mb x nb bool base graph.  A cycle of L degree-2 base columns whose alternating
    # shift sum is t mod z lifts to codewords of weight L z / gcd(t, z).  Returns shifts (-1
    # where absent) and the number of edges that had to close a lifted 4-cycle.
    mb, nb = present.shape
    gcd_t = np.empty(z, np.int64)
    for t in range(z):
        a, b = z, t
        while b:
            a, b = b, a % b
        gcd_t[t] = a
    p = np.full((mb, nb), -1, np.int64)
    row_cols = np.full((mb, nb), -1, np.int64)  # assigned columns per row
    row_cnt = np.zeros(mb, np.int64)
    col_rows = np.full((nb, mb), -1, np.int64)  # assigned rows per column
    col_cnt = np.zeros(nb, np.int64)
    deg = np.zeros(nb, np.int64)
    for j in range(nb):
        for i in range(mb):
            deg[j] += present[i, j]
    cnt4 = np.zeros(z, np.int64)
    cnt6 = np.zeros(z, np.int64)
    minw = np.zeros(z, np.int64)  # lightest degree-2 codeword per shift, capped at min_weight
    st_row = np.zeros(max_len + 1, np.int64)  # DFS over degree-2 columns: row, next slot, sum
    st_pos = np.zeros(max_len + 1, np.int64)
    st_sum = np.zeros(max_len + 1, np.int64)
    on_path = np.zeros(mb, np.bool_)
    forced = 0
    e = 0
    for jj in range(col_order.shape[0]):
        j = col_order[jj]
        for i in range(mb):
            if not present[i, j]:
                continue
            cnt4[:] = 0
            cnt6[:] = 0
            minw[:] = min_weight
            for a in range(row_cnt[i]):
                j2 = row_cols[i, a]
                pij2 = p[i, j2]
                for b in range(col_cnt[j2]):
                    i2 = col_rows[j2, b]
                    if i2 == i:
                        continue
                    base = pij2 - p[i2, j2]
                    if p[i2, j] >= 0:  # 4-cycle i j i2 j2
                        cnt4[(base + p[i2, j]) % z] += 1
                    for c in range(row_cnt[i2]):  # 6-cycle i j i3 j3 i2 j2
                        j3 = row_cols[i2, c]
                        if j3 == j or j3 == j2:
                            continue
                        b3 = base + p[i2, j3]
                        for d in range(col_cnt[j]):
                            i3 = col_rows[j, d]
                            if i3 == i2 or p[i3, j3] < 0:
                                continue
                            cnt6[(b3 - p[i3, j3] + p[i3, j]) % z] += 1
            if deg[j] == 2 and col_cnt[j] == 1:
                # second edge of a degree-2 column: cycles of degree-2 columns j, ..., from its
                # other row r0 back to i; sum = s - p[r0, j] + sum over the path of
                # p[x, j2] - p[y, j2] (x -> y along j2)
                r0 = col_rows[j, 0]
                depth = 0
                st_row[0] = r0
                st_pos[0] = 0
                st_sum[0] = -p[r0, j]
                on_path[r0] = True
                while depth >= 0:
                    x = st_row[depth]
                    if st_pos[depth] >= row_cnt[x]:
                        on_path[x] = False
                        depth -= 1
                        continue
                    j2 = row_cols[x, st_pos[depth]]
                    st_pos[depth] += 1
                    if j2 == j or deg[j2] != 2 or col_cnt[j2] != 2:
                        continue
                    y = col_rows[j2, 0] if col_rows[j2, 1] == x else col_rows[j2, 1]
                    total = st_sum[depth] + p[x, j2] - p[y, j2]
                    length = depth + 2  # columns: j and the path's
                    if y == i:
                        for t in range(z):
                            w = length * z // gcd_t[t]
                            s = (t - total) % z
                            if w < minw[s]:
                                minw[s] = w
                    elif not on_path[y] and length < max_len:
                        depth += 1
                        st_row[depth] = y
                        st_pos[depth] = 0
                        st_sum[depth] = total
                        on_path[y] = True
            start = int(tie_u[e] * z)
            best = -1
            best4 = 0
            bestw = 0
            best6 = 0
            for u in range(z):
                s = (start + u) % z
                if best < 0 or cnt4[s] < best4 or (cnt4[s] == best4 and (
                        minw[s] > bestw or (minw[s] == bestw and cnt6[s] < best6))):
                    best = s
                    best4 = cnt4[s]
                    bestw = minw[s]
                    best6 = cnt6[s]
            if best4 > 0:
                forced += 1
            p[i, j] = best
            row_cols[i, row_cnt[i]] = j
            row_cnt[i] += 1
            col_rows[j, col_cnt[j]] = i
            col_cnt[j] += 1
            e += 1
    return p, forced


def choose_shifts(present: np.ndarray, z: int, rng: np.random.Generator,
                  max_len: int = DEG2_CYCLE_LEN, min_weight: int = MIN_DEG2_WEIGHT) -> tuple[np.ndarray, int]:
    """Circulant shifts for a base graph (mb x nb bool): fewest lifted 4-cycles, then the
    heaviest lightest degree-2 codeword (from cycles of up to `max_len` degree-2 base columns;
    weights from `min_weight` up count as equal), then fewest 6-cycles.

    Columns are visited by decreasing degree (ties in an order drawn from `rng`).  Returns the
    shift matrix (int64, -1 where the base graph has no edge) and the number of edges whose
    every shift closed a 4-cycle (0 means the lifted graph has girth >= 6).
    """
    if not isinstance(rng, np.random.Generator):
        raise QkdInputError("rng must be a numpy.random.Generator")
    present = np.ascontiguousarray(present, dtype=np.bool_)
    if present.ndim != 2 or present.size == 0 or z < 1:
        raise QkdInputError("present must be a non-empty 2-D base graph and z >= 1")
    if max_len < 2 or min_weight < 1:
        raise QkdInputError(f"need max_len >= 2 and min_weight >= 1, got {max_len}, {min_weight}")
    deg = present.sum(axis=0)
    perm = rng.permutation(present.shape[1])
    order = perm[np.argsort(-deg[perm], kind="stable")].astype(np.int64)
    tie_u = rng.random(int(present.sum()))
    return _shift_kernel(present, order, int(z), tie_u, int(max_len), int(min_weight))


def block_puncture_order(shifts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Base columns with pairwise disjoint row sets, lowest degree first (ties from `rng`)."""
    present = np.asarray(shifts) >= 0
    deg = present.sum(axis=0)
    perm = rng.permutation(present.shape[1])
    used = np.zeros(present.shape[0], dtype=bool)
    kept = []
    for j in perm[np.argsort(deg[perm], kind="stable")]:
        rows = present[:, j]
        if not (used & rows).any():
            kept.append(int(j))
            used |= rows
    return np.array(kept, dtype=np.int64)


def stratified_block_order(degrees: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blocks in an order whose every prefix holds each degree class in proportion.

    Within a class of c blocks (in an order drawn from `rng`), the r-th gets the key
    (r + u) / c with one offset u ~ U[0, 1) per class; blocks are sorted by key.
    """
    degrees = np.asarray(degrees)
    keys = np.empty(degrees.size)
    for d in np.unique(degrees):
        members = rng.permutation(np.flatnonzero(degrees == d))
        keys[members] = (np.arange(members.size) + rng.random()) / members.size
    return np.argsort(keys, kind="stable").astype(np.int64)


def build_qc_code(rate: float, n: int, seed: int, z: int) -> QcLdpcCode:
    """QC family code of design `rate` (one of codes.FAMILY_RATES), length n = nb z.

    Deterministic in (rate, n, seed, z), so both parties build the same matrix.
    """
    key = round(float(rate), 2)
    dist = ensemble_of(key)
    if not isinstance(z, (int, np.integer)) or z < 1 or not isinstance(n, (int, np.integer)) \
            or n % z or n // z < 8:
        raise QkdInputError(f"code length n={n!r} must be a multiple of z={z!r} with >= 8 blocks")
    nb = int(n) // int(z)
    mb = int(round(nb * (1.0 - key)))
    if not 2 <= mb < nb:
        raise QkdInputError(f"{nb} base columns give {mb} base rows at rate {key}: need more blocks")
    rng = np.random.default_rng([int(seed), int(n), int(round(key * 100)), int(z)])
    degs = np.minimum(variable_degrees(nb, dist), mb)
    base = peg_matrix(degs, mb, rng).toarray().astype(bool)
    shifts, forced = choose_shifts(base, int(z), rng)
    for _ in range(SHIFT_ATTEMPTS - 1):  # new column and tie orders while a 4-cycle was forced
        if forced == 0:
            break
        again, again_forced = choose_shifts(base, int(z), rng)
        if again_forced < forced:
            shifts, forced = again, again_forced
    h = lifted_matrix(shifts, int(z))
    punct_blocks = block_puncture_order(shifts, rng)
    is_punct = np.zeros(nb, dtype=bool)
    is_punct[punct_blocks] = True
    order = stratified_block_order(base.sum(axis=0), rng)
    blocks = np.concatenate([order[~is_punct[order]], punct_blocks])
    lanes = np.arange(int(z))
    fill = (blocks[:, None] * z + lanes[None, :]).ravel().astype(np.int64)
    punct = (punct_blocks[:, None] * z + lanes[None, :]).ravel().astype(np.int64)
    return QcLdpcCode(h=h, h_csc=h.tocsc(), puncture_order=punct, fill_order=fill, rate=key,
                      seed=int(seed), z=int(z), shifts=shifts.astype(np.int32), four_cycles=int(forced))
