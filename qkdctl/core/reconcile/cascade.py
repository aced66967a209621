"""Cascade kernels on bit-packed keys: shuffles, block parities, lockstep binary searches.

The keys of each pass are stored permuted and packed into uint64 words (bit i of a pass
at word i >> 6, bit i & 63).  A range parity is the folded XOR of its masked words.

`CascadeBobState` holds Bob's side of one frame: per pass ("slot") the permutation, its
inverse, the packed permuted key, and a binary tree per block of the *error parities*
(Alice's parity XOR Bob's) of every node whose parity Alice disclosed (only the block root
unless the variant reuses sub-blocks).  All binary searches advance in lockstep: each
round Bob asks Alice the parity of the left half of every active search; `bob_round`
applies her answers, flips the bits found, toggles the error parity of every known node
containing a flipped bit in every pass, and starts new searches at the deepest odd known
node (the cascade effect).  Alice's side only needs `permutation`, `pack_permuted` (or
`pack_shuffled`: both in one kernel, no permutation array) and
`packed_range_parities`.  The message exchange lives in `qkdctl.protocol.cascade_roles`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError

_ONE = np.uint64(1)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

# cnt[] slots of CascadeBobState
_NS, _NFLIP, _ND, _STATUS, _STARTED, _QHEAD, _QTAIL = range(7)
STATUS_OK, STATUS_OVERFLOW = 0, 1


def pass_seed(frame_seed: int, index: int) -> int:
    """64-bit shuffle seed of pass `index` of a frame (both parties derive the same)."""
    z = (frame_seed + (index + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


@njit(cache=True, inline="always")
def _splitmix_next(state):
    state += _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _fisher_yates(seed, a):
    """Shuffle `a` in place (Fisher-Yates); each splitmix64 output gives two 32-bit draws
    (high, then low half), consumed two steps at a time (no branch per step)."""
    n = a.shape[0]
    state = np.uint64(seed)
    lo32 = np.uint64(0xFFFFFFFF)
    i = n - 1
    while i >= 2:
        state, z = _splitmix_next(state)
        j = np.int64(((z >> np.uint64(32)) * np.uint64(i + 1)) >> np.uint64(32))
        t = a[i]
        a[i] = a[j]
        a[j] = t
        j = np.int64(((z & lo32) * np.uint64(i)) >> np.uint64(32))
        t = a[i - 1]
        a[i - 1] = a[j]
        a[j] = t
        i -= 2
    if i == 1:
        state, z = _splitmix_next(state)
        j = np.int64(((z >> np.uint64(32)) * np.uint64(2)) >> np.uint64(32))
        t = a[1]
        a[1] = a[j]
        a[j] = t


@njit(cache=True)
def _permutation_kernel(seed, perm):
    """The identity permutation shuffled by `_fisher_yates(seed)`."""
    n = perm.shape[0]
    for i in range(n):
        perm[i] = i
    _fisher_yates(seed, perm)


@njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, inline="always")
def _half_masks(seed, n):
    """The random halving's subset masks (bit i of successive splitmix64 outputs), the flip
    that puts the larger half first (1: the complement is larger) and that half's size."""
    nw = (n + 63) // 64
    masks = np.empty(nw, dtype=np.uint64)
    state = np.uint64(seed)
    ones = 0
    for w in range(nw):
        state += _GOLDEN
        z = state
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        if w == nw - 1 and n % 64 != 0:
            z &= (_ONE << np.uint64(n % 64)) - _ONE
        masks[w] = z
        ones += _popcount(z)
    flip = np.uint64(0) if 2 * ones >= n else _ONE
    return masks, flip, ones if flip == 0 else n - ones


@njit(cache=True)
def _half_split_kernel(seed, perm):
    """Random split into two halves: bit i of successive splitmix64 outputs picks i's half;
    the larger half comes first, each in increasing index order.  Returns its size k."""
    n = perm.shape[0]
    masks, flip, k = _half_masks(seed, n)
    g1 = np.empty(k + 1, dtype=np.int32)  # branch-free: write to both, advance one
    g2 = np.empty(n - k + 1, dtype=np.int32)
    a = 0
    b = 0
    for i in range(n):
        sel = np.int64(((masks[i >> 6] >> np.uint64(i & 63)) & _ONE) ^ flip)
        g1[a] = i
        g2[b] = i
        a += sel
        b += 1 - sel
    perm[:k] = g1[:k]
    perm[k:] = g2[:n - k]
    return min(k, n - 1)


@njit(cache=True)
def _pack_permuted_kernel(bits, perm, words):
    n = perm.shape[0]
    for w in range(words.shape[0]):
        base = w * 64
        top = min(64, n - base)
        acc = np.uint64(0)
        for t in range(top):
            acc |= np.uint64(bits[perm[base + t]]) << np.uint64(t)
        words[w] = acc


@njit(cache=True)
def _shuffle_pack_kernel(seed, bits, scratch, words):
    """bits[permutation(seed)] packed, without building the permutation: the same
    Fisher-Yates swaps (same draws as `_permutation_kernel`) act on a copy of the bits in
    `scratch`, which is then packed in order (Alice's pass set-up)."""
    n = bits.shape[0]
    for i in range(n):
        scratch[i] = bits[i]
    _fisher_yates(seed, scratch)
    for w in range(words.shape[0]):
        base = w * 64
        top = min(64, n - base)
        acc = np.uint64(0)
        for t in range(top):
            acc |= np.uint64(scratch[base + t]) << np.uint64(t)
        words[w] = acc


@njit(cache=True)
def _half_pack_kernel(seed, bits, scratch, words):
    """bits in the order of `_half_split_kernel(seed)` packed, without building the order:
    each bit goes straight to its place in `scratch`, which is then packed in order (Alice's
    pass set-up).  Returns the same k as `_half_split_kernel`."""
    n = bits.shape[0]
    masks, flip, k = _half_masks(seed, n)
    a = 0
    b = k
    for i in range(n):
        sel = np.int64(((masks[i >> 6] >> np.uint64(i & 63)) & _ONE) ^ flip)
        scratch[b + sel * (a - b)] = bits[i]
        a += sel
        b += 1 - sel
    for w in range(words.shape[0]):
        base = w * 64
        top = min(64, n - base)
        acc = np.uint64(0)
        for t in range(top):
            acc |= np.uint64(scratch[base + t]) << np.uint64(t)
        words[w] = acc
    return min(k, n - 1)


@njit(cache=True)
def _shuffle_inverse_pack_kernel(seed, bits, perm, pos, words):
    """Bob's pass set-up in one kernel: perm = `_permutation_kernel(seed)`, pos its inverse,
    bits[perm] packed.  The swaps move (index << 1 | bit), so the packing sweep reads the
    bits in order instead of gathering them (n < 2^30)."""
    n = perm.shape[0]
    for i in range(n):
        perm[i] = (i << 1) | bits[i]
    _fisher_yates(seed, perm)
    for w in range(words.shape[0]):
        base = w * 64
        top = min(64, n - base)
        acc = np.uint64(0)
        for t in range(top):
            v = perm[base + t]
            idx = v >> 1
            perm[base + t] = idx
            pos[idx] = base + t
            acc |= np.uint64(v & 1) << np.uint64(t)
        words[w] = acc


@njit(cache=True)
def _half_inverse_pack_kernel(seed, bits, perm, pos, words):
    """Bob's pass set-up for a random halving in one sweep: perm = the order of
    `_half_split_kernel(seed)`, pos its inverse, bits[perm] packed.  Returns its k."""
    n = perm.shape[0]
    masks, flip, k = _half_masks(seed, n)
    for w in range(words.shape[0]):
        words[w] = 0
    a = 0
    b = k
    for i in range(n):
        sel = np.int64(((masks[i >> 6] >> np.uint64(i & 63)) & _ONE) ^ flip)
        q = b + sel * (a - b)
        perm[q] = i
        pos[i] = q
        words[q >> 6] |= np.uint64(bits[i]) << np.uint64(q & 63)
        a += sel
        b += 1 - sel
    return min(k, n - 1)


@njit(cache=True, inline="always")
def _range_parity(words, s, e):
    """Parity of bits [s, e) (s < e) of a packed row."""
    ws = s >> 6
    we = (e - 1) >> 6
    x = words[ws] >> np.uint64(s & 63)
    if ws == we:
        m = e - s
        if m < 64:
            x &= (_ONE << np.uint64(m)) - _ONE
    else:
        for w in range(ws + 1, we):
            x ^= words[w]
        r = ((e - 1) & 63) + 1
        last = words[we]
        if r < 64:
            last &= (_ONE << np.uint64(r)) - _ONE
        x ^= last
    x ^= x >> np.uint64(32)
    x ^= x >> np.uint64(16)
    x ^= x >> np.uint64(8)
    x ^= x >> np.uint64(4)
    x ^= x >> np.uint64(2)
    x ^= x >> np.uint64(1)
    return np.int64(x & _ONE)


@njit(cache=True)
def _block_parities_kernel(words, n, k, out):
    for b in range(out.shape[0]):
        s = b * k
        out[b] = _range_parity(words, s, min(n, s + k))


@njit(cache=True)
def _range_parities_kernel(words, ranges, out):
    for i in range(out.shape[0]):
        out[i] = _range_parity(words[ranges[3 * i]], np.int64(ranges[3 * i + 1]),
                               np.int64(ranges[3 * i + 2]))


@njit(cache=True, inline="always")
def _push_flip(b, fq, cnt):
    if cnt[6] >= fq.shape[0]:
        cnt[3] = 1
        return
    fq[cnt[6]] = b
    cnt[6] += 1


@njit(cache=True, inline="always")
def _start_search(p, bl, h, s, e, perm, tree, tree_off, tsize, sob, blk_off, srch, live, fq, cnt):
    """Search for an error in odd node h = [s, e) of block bl of pass p (descend known nodes)."""
    ts = tsize[p]
    tbase = tree_off[p] + bl * ts
    while e - s > 1:
        left = 2 * h
        if left >= ts or tree[tbase + left] < 0:
            break
        m = s + (e - s + 1) // 2
        if tree[tbase + left] == 1:
            h = left
            e = m
        else:
            h = left + 1
            s = m
    if e - s == 1:
        _push_flip(np.int64(perm[p, s]), fq, cnt)
        return
    i = cnt[0]
    if i >= srch.shape[0]:
        cnt[3] = 1
        return
    srch[i, 0] = p
    srch[i, 1] = bl
    srch[i, 2] = h
    srch[i, 3] = s
    srch[i, 4] = e
    live[i] = 1
    sob[blk_off[p] + bl] = i
    cnt[0] = i + 1


@njit(cache=True)
def _drain(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live, fq,
           defer, cnt):
    """Apply queued flips to every started pass and start the searches they make odd."""
    while cnt[5] < cnt[6] and cnt[3] == 0:
        b = fq[cnt[5]]
        cnt[5] += 1
        cnt[1] += 1
        for p in range(cnt[4]):
            q = np.int64(pos[p, b])
            words[p, q >> 6] ^= _ONE << np.uint64(q & 63)
            k = ksize[p]
            bl = q // k
            s = bl * k
            e = min(n, s + k)
            h = 1
            ts = tsize[p]
            tbase = tree_off[p] + bl * ts
            best_h = -1
            best_s = 0
            best_e = 0
            while h < ts:
                v = tree[tbase + h]
                if v < 0:
                    break
                v = 1 - v
                tree[tbase + h] = v
                if v == 1:
                    best_h = h
                    best_s = s
                    best_e = e
                if e - s == 1:
                    break
                m = s + (e - s + 1) // 2
                if q < m:
                    h = 2 * h
                    e = m
                else:
                    h = 2 * h + 1
                    s = m
            j = sob[blk_off[p] + bl]
            if j >= 0:
                if srch[j, 3] <= q and q < srch[j, 4]:
                    live[j] = 0
                    sob[blk_off[p] + bl] = -1
                else:
                    d = cnt[2]
                    if d >= defer.shape[0]:
                        cnt[3] = 1
                        return
                    defer[d, 0] = p
                    defer[d, 1] = q
                    cnt[2] = d + 1
                    continue
            if best_h >= 0:
                _start_search(p, bl, best_h, best_s, best_e, perm, tree, tree_off, tsize, sob,
                              blk_off, srch, live, fq, cnt)


@njit(cache=True)
def _settle(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live, fq,
            defer, cnt):
    """Drain flips, then revisit deferred flips whose block search has ended, to a fixpoint."""
    _drain(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live, fq,
           defer, cnt)
    progressed = True
    while progressed and cnt[3] == 0:
        progressed = False
        kept = 0
        nd = cnt[2]
        for d in range(nd):
            p = defer[d, 0]
            q = defer[d, 1]
            k = ksize[p]
            bl = q // k
            if sob[blk_off[p] + bl] >= 0:
                defer[kept, 0] = p
                defer[kept, 1] = q
                kept += 1
                continue
            s = bl * k
            e = min(n, s + k)
            h = 1
            ts = tsize[p]
            tbase = tree_off[p] + bl * ts
            best_h = -1
            best_s = 0
            best_e = 0
            while h < ts:
                v = tree[tbase + h]
                if v < 0:
                    break
                if v == 1:
                    best_h = h
                    best_s = s
                    best_e = e
                if e - s == 1:
                    break
                m = s + (e - s + 1) // 2
                if q < m:
                    h = 2 * h
                    e = m
                else:
                    h = 2 * h + 1
                    s = m
            if best_h >= 0:
                _start_search(p, bl, best_h, best_s, best_e, perm, tree, tree_off, tsize, sob,
                              blk_off, srch, live, fq, cnt)
                progressed = True
        # entries appended by _start_search -> _drain below land after `kept`
        for d in range(nd, cnt[2]):
            defer[kept, 0] = defer[d, 0]
            defer[kept, 1] = defer[d, 1]
            kept += 1
        cnt[2] = kept
        if cnt[5] < cnt[6]:
            _drain(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live,
                   fq, defer, cnt)
            progressed = True


@njit(cache=True)
def _compact(blk_off, sob, srch, live, cnt):
    kept = 0
    for i in range(cnt[0]):
        if live[i]:
            if i != kept:
                for c in range(5):
                    srch[kept, c] = srch[i, c]
                live[kept] = 1
            sob[blk_off[srch[kept, 0]] + srch[kept, 1]] = kept
            kept += 1
    for i in range(kept, cnt[0]):
        live[i] = 0
    cnt[0] = kept


@njit(cache=True)
def _set_roots_kernel(p, alice_par, n, words, ksize, tree, tree_off, tsize):
    k = ksize[p]
    ts = tsize[p]
    odd = 0
    for bl in range(alice_par.shape[0]):
        s = bl * k
        err = np.int8(alice_par[bl] ^ _range_parity(words[p], s, min(n, s + k)))
        tree[tree_off[p] + bl * ts + 1] = err
        odd += err
    return odd


@njit(cache=True)
def _start_odd_blocks_kernel(p, limit, n, words, perm, pos, ksize, tree, tree_off, tsize, sob,
                             blk_off, srch, live, fq, defer, cnt):
    """Start searches in up to `limit` (< 0: all) odd blocks of pass p without one."""
    k = ksize[p]
    ts = tsize[p]
    started = 0
    for bl in range(-(-n // k)):
        if limit >= 0 and started >= limit:
            break
        if tree[tree_off[p] + bl * ts + 1] == 1 and sob[blk_off[p] + bl] < 0:
            s = bl * k
            _start_search(p, bl, 1, s, min(n, s + k), perm, tree, tree_off, tsize, sob, blk_off,
                          srch, live, fq, cnt)
            started += 1
    _settle(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live, fq,
            defer, cnt)
    _compact(blk_off, sob, srch, live, cnt)
    return started


@njit(cache=True)
def _bob_round_kernel(packed, nreq, n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off,
                      srch, live, fq, defer, cnt):
    for i in range(nreq):
        if live[i] == 0 or cnt[3] != 0:
            continue
        reply = (packed[i >> 3] >> (7 - (i & 7))) & 1
        p = srch[i, 0]
        bl = srch[i, 1]
        h = srch[i, 2]
        s = srch[i, 3]
        e = srch[i, 4]
        m = s + (e - s + 1) // 2
        err_left = np.int8(reply ^ _range_parity(words[p], s, m))
        ts = tsize[p]
        left = 2 * h
        if left < ts:
            tbase = tree_off[p] + bl * ts
            tree[tbase + left] = err_left
            tree[tbase + left + 1] = 1 - err_left
        if err_left == 1:
            h = left
            e = m
        else:
            h = left + 1
            s = m
        live[i] = 0
        sob[blk_off[p] + bl] = -1
        # `_start_search`, written out: numba's call (inlined or not) with its ten array
        # arguments cost as much again as the whole round's work per search at n = 1e4
        tbase = tree_off[p] + bl * ts
        while e - s > 1:
            left = 2 * h
            if left >= ts or tree[tbase + left] < 0:
                break
            m = s + (e - s + 1) // 2
            if tree[tbase + left] == 1:
                h = left
                e = m
            else:
                h = left + 1
                s = m
        if e - s == 1:
            _push_flip(np.int64(perm[p, s]), fq, cnt)
        else:
            j = cnt[0]
            if j >= srch.shape[0]:
                cnt[3] = 1
            else:
                srch[j, 0] = p
                srch[j, 1] = bl
                srch[j, 2] = h
                srch[j, 3] = s
                srch[j, 4] = e
                live[j] = 1
                sob[blk_off[p] + bl] = j
                cnt[0] = j + 1
        if cnt[5] < cnt[6]:
            _drain(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live,
                   fq, defer, cnt)
    _settle(n, words, perm, pos, ksize, tree, tree_off, tsize, sob, blk_off, srch, live, fq,
            defer, cnt)
    _compact(blk_off, sob, srch, live, cnt)


@njit(cache=True, inline="always")
def _arena_views(i64, i32, lay):
    """The work arrays of CascadeBobState as views of its two arenas (same order)."""
    slots, n, cap, ndefer, nsob = lay[0], lay[1], lay[2], lay[3], lay[4]
    ksize = i64[0:slots]
    tree_off = i64[slots:2 * slots]
    tsize = i64[2 * slots:3 * slots]
    blk_off = i64[3 * slots:4 * slots]
    o = 4 * slots
    cnt = i64[o:o + 8]
    o += 8
    fq = i64[o:o + n + 1]
    o += n + 1
    srch = i64[o:o + 5 * cap].reshape((cap, 5))
    o += 5 * cap
    defer = i64[o:o + 2 * ndefer].reshape((ndefer, 2))
    perm = i32[0:slots * n].reshape((slots, n))
    pos = i32[slots * n:2 * slots * n].reshape((slots, n))
    sob = i32[2 * slots * n:2 * slots * n + nsob]
    return ksize, tree_off, tsize, blk_off, cnt, fq, srch, defer, perm, pos, sob


@njit(cache=True)
def _bob_round_entry_kernel(packed, nreq, n, words, tree, live, i64, i32, lay):
    ksize, tree_off, tsize, blk_off, cnt, fq, srch, defer, perm, pos, sob = _arena_views(
        i64, i32, lay)
    _bob_round_kernel(packed, nreq, n, words, perm, pos, ksize, tree, tree_off, tsize, sob,
                      blk_off, srch, live, fq, defer, cnt)


@njit(cache=True)
def _start_odd_entry_kernel(p, limit, n, words, tree, live, i64, i32, lay):
    ksize, tree_off, tsize, blk_off, cnt, fq, srch, defer, perm, pos, sob = _arena_views(
        i64, i32, lay)
    return _start_odd_blocks_kernel(p, limit, n, words, perm, pos, ksize, tree, tree_off, tsize,
                                    sob, blk_off, srch, live, fq, defer, cnt)


@njit(cache=True)
def _apply_flips_kernel(out, flips):
    for i in range(flips.shape[0]):
        out[flips[i]] ^= 1


@njit(cache=True)
def _packed_range_parities_kernel(words, begun, n, ranges, out):
    """Parities of requested (slot, start, end) ranges, packed MSB first into `out` (zeroed);
    returns -1 if all ranges are valid, else the index of the first bad one."""
    for i in range(ranges.shape[0] // 3):
        p = np.int64(ranges[3 * i])
        s = np.int64(ranges[3 * i + 1])
        e = np.int64(ranges[3 * i + 2])
        if p < 0 or p >= begun.shape[0] or not begun[p] or s < 0 or e > n or e <= s:
            return i
        out[i >> 3] |= np.uint8(_range_parity(words[p], s, e) << (7 - (i & 7)))
    return -1


@njit(cache=True)
def _requests_kernel(srch, ranges):
    for i in range(ranges.shape[0] // 3):
        s = srch[i, 3]
        ranges[3 * i] = srch[i, 0]
        ranges[3 * i + 1] = s
        ranges[3 * i + 2] = s + (srch[i, 4] - s + 1) // 2


def words_for(n: int) -> int:
    """Number of uint64 words holding n bits."""
    return (n + 63) // 64


def check_bits(bits: np.ndarray) -> np.ndarray:
    """Validate a 1-D 0/1 key; return it as contiguous uint8."""
    arr = np.asarray(bits)
    if arr.ndim != 1 or arr.size < 2:
        raise QkdInputError(f"key must be a 1-D array of >= 2 bits, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.max() > 1:
        raise QkdInputError("key must hold only 0/1 values")
    return arr


def permutation(seed: int, n: int) -> np.ndarray:
    """The shuffle (int32, permuted position -> key index) of n bits for a 64-bit seed."""
    if n < 1 or n >= 2**31:
        raise QkdInputError(f"shuffle length must be in [1, 2^31), got {n}")
    perm = np.empty(n, dtype=np.int32)
    _permutation_kernel(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), perm)
    return perm


def half_split(seed: int, n: int) -> tuple[np.ndarray, int]:
    """Random halving of n >= 2 bits for a 64-bit seed: (order, k) with the first block
    order[:k] (the larger half, k >= n/2) and the second order[k:], each ascending."""
    if n < 2 or n >= 2**31:
        raise QkdInputError(f"split length must be in [2, 2^31), got {n}")
    perm = np.empty(n, dtype=np.int32)
    k = int(_half_split_kernel(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), perm))
    return perm, k


def pack_permuted(bits: np.ndarray, perm: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Pack bits[perm] into uint64 words (bit i at word i >> 6, position i & 63)."""
    if perm.shape != bits.shape:
        raise QkdInputError(f"permutation length {perm.shape} != key length {bits.shape}")
    if out is None:
        out = np.empty(words_for(bits.size), dtype=np.uint64)
    _pack_permuted_kernel(bits, perm, out)
    return out


def pack_shuffled(bits: np.ndarray, seed: int, halves: bool = False) -> tuple[np.ndarray, int]:
    """Alice's pass set-up in one kernel: the key in the order of `permutation(seed, n)`
    (or, with `halves`, of `half_split(seed, n)`) packed into uint64 words, and the split's
    first-half size k (n for a full shuffle)."""
    arr = check_bits(bits)
    words = np.empty(words_for(arr.size), dtype=np.uint64)
    seed64 = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    scratch = np.empty(arr.size, dtype=np.uint8)
    if halves:
        return words, int(_half_pack_kernel(seed64, arr, scratch, words))
    _shuffle_pack_kernel(seed64, arr, scratch, words)
    return words, arr.size


def block_parities(words: np.ndarray, n: int, k: int, blocks: int) -> np.ndarray:
    """Parities (uint8) of the first `blocks` blocks of size k of a packed n-bit row."""
    if not 1 <= k <= n or not 1 <= blocks <= -(-n // k):
        raise QkdInputError(f"bad block request: k={k}, blocks={blocks}, n={n}")
    out = np.empty(blocks, dtype=np.uint8)
    _block_parities_kernel(words, n, k, out)
    return out


def range_parities(words: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Parities (uint8) of ranges given as int32 triples (slot, start, end): bits
    [start, end) of packed row words[slot] (unchecked)."""
    out = np.empty(ranges.shape[0] // 3, dtype=np.uint8)
    _range_parities_kernel(words, ranges, out)
    return out


def packed_range_parities(words: np.ndarray, n: int, begun: np.ndarray,
                          ranges: np.ndarray) -> np.ndarray:
    """Parities of a peer's (slot, start, end) int32 triples, packed like np.packbits (first
    parity in the top bit of byte 0).  Every slot must have begun (begun[slot]) and every
    range be non-empty within [0, n); else QkdInputError naming the first bad one."""
    if ranges.ndim != 1 or ranges.shape[0] % 3 != 0 or ranges.shape[0] == 0:
        raise QkdInputError(f"ranges must be a non-empty flat array of (slot, start, end) "
                            f"triples, got {ranges.shape[0]} values")
    out = np.zeros((ranges.shape[0] // 3 + 7) // 8, dtype=np.uint8)
    bad = _packed_range_parities_kernel(words, begun, n, ranges, out)
    if bad >= 0:
        slot, start, end = ranges[3 * bad: 3 * bad + 3]
        raise QkdInputError(
            f"request {bad}: slot {slot} range [{start}, {end}) is not a "
            f"non-empty range of a begun pass within [0, {n})")
    return out


class CascadeBobState:
    """Bob's Cascade state for one frame of n bits with `slots` pass slots (see module doc)."""

    def __init__(self, bits: np.ndarray, block_sizes: list[int], block_reuse: bool,
                 half_slots: list[bool] | None = None) -> None:
        """`half_slots[i]`: slot i is split by `half_split` (block size set per pass)."""
        self.bits = check_bits(bits)
        self.n = n = self.bits.size
        slots = len(block_sizes)
        if not 1 <= slots <= 255:
            raise QkdInputError(f"Cascade needs 1..255 pass slots, got {slots}")
        self.ksize = np.array(block_sizes, dtype=np.int64)
        if self.ksize.min() < 1 or self.ksize.max() > n:
            raise QkdInputError(f"block sizes must lie in [1, {n}], got {block_sizes}")
        halves = np.zeros(slots, dtype=bool) if half_slots is None else np.array(half_slots, bool)
        if halves.shape != (slots,) or (halves.any() and n < 2):
            raise QkdInputError("half_slots must give one flag per slot (and n >= 2)")
        k_alloc = np.where(halves, max(1, n - 1), self.ksize)
        nblocks = np.where(halves, 2, -(-n // self.ksize)).astype(np.int64)
        depth = np.ceil(np.log2(k_alloc)).astype(np.int64) + 1
        self.tsize = (2 ** depth) if block_reuse else np.full(slots, 2, dtype=np.int64)
        self.tsize = self.tsize.astype(np.int64)
        tree_off = np.concatenate(([0], np.cumsum(nblocks * self.tsize)[:-1])).astype(np.int64)
        self.tree = np.full(int((nblocks * self.tsize).sum()), -1, dtype=np.int8)
        blk_off = np.concatenate(([0], np.cumsum(nblocks)[:-1])).astype(np.int64)
        self.nblocks = nblocks
        nsob = int(nblocks.sum())
        cap = 2 * nsob + 16
        ndefer = 2 * n + 1024
        self.live = np.zeros(cap, dtype=np.uint8)
        self.words = np.empty((slots, words_for(n)), dtype=np.uint64)
        # The int64 and int32 work arrays live in two arenas (`_arena_views` gives the same
        # views inside the kernels): a kernel call then passes 9 arguments instead of 17.
        self._lay = np.array([slots, n, cap, ndefer, nsob], dtype=np.int64)
        i64_shapes = [(slots,), (slots,), (slots,), (slots,), (8,), (n + 1,), (cap, 5),
                      (ndefer, 2)]
        self._i64 = np.zeros(sum(math.prod(sh) for sh in i64_shapes), dtype=np.int64)
        self._i32 = np.empty(2 * slots * n + nsob, dtype=np.int32)
        views, o = [], 0
        for sh in i64_shapes:
            size = math.prod(sh)
            views.append(self._i64[o:o + size].reshape(sh))
            o += size
        views[0][:] = self.ksize
        views[1][:] = tree_off
        views[2][:] = self.tsize
        views[3][:] = blk_off
        (self.ksize, self.tree_off, self.tsize, self.blk_off, self.cnt, self.fq, self.srch,
         self.defer) = views
        self.perm = self._i32[:slots * n].reshape(slots, n)
        self.pos = self._i32[slots * n:2 * slots * n].reshape(slots, n)
        self.sob = self._i32[2 * slots * n:]
        self.sob[:] = -1

    def _args(self) -> tuple:
        return (self.n, self.words, self.tree, self.live, self._i64, self._i32, self._lay)

    def begin_pass(self, slot: int, seed: int, halves: bool = False) -> int:
        """Shuffle (or, with `halves`, randomly halve) and pack Bob's current key into
        `slot`, clearing what it held; return the slot's block size."""
        if self.cnt[_NS] != 0:
            raise QkdInputError("a pass cannot begin while binary searches are active")
        bits = self.corrected_bits()
        if halves:
            if self.nblocks[slot] != 2:
                raise QkdInputError(f"slot {slot} was not allocated for random halves")
            self.ksize[slot] = _half_inverse_pack_kernel(np.uint64(seed), bits, self.perm[slot],
                                                         self.pos[slot], self.words[slot])
        else:
            _shuffle_inverse_pack_kernel(np.uint64(seed), bits, self.perm[slot], self.pos[slot],
                                         self.words[slot])
        lo = self.tree_off[slot]
        self.tree[lo:lo + self.nblocks[slot] * self.tsize[slot]] = -1
        self.cnt[_STARTED] = max(self.cnt[_STARTED], slot + 1)
        return int(self.ksize[slot])

    def start_pass(self, slot: int, alice_parities: np.ndarray, limit: int = -1) -> int:
        """Apply Alice's block parities of `slot`; start searches in up to `limit` (< 0: all)
        odd blocks; return the number of odd blocks."""
        par = np.ascontiguousarray(alice_parities, dtype=np.uint8)
        if par.size > self.nblocks[slot]:
            raise QkdInputError(f"{par.size} block parities for {self.nblocks[slot]} blocks")
        odd = int(_set_roots_kernel(slot, par, self.n, self.words, self.ksize, self.tree,
                                    self.tree_off, self.tsize))
        _start_odd_entry_kernel(slot, limit, *self._args())
        return odd

    def waiting_blocks(self, slot: int) -> int:
        """Odd blocks of `slot` without a search."""
        lo = self.tree_off[slot]
        nb = int(-(-self.n // self.ksize[slot]))
        roots = self.tree[lo + 1: lo + nb * self.tsize[slot]: self.tsize[slot]][:nb]
        sob = self.sob[self.blk_off[slot]: self.blk_off[slot] + nb]
        return int(np.count_nonzero((roots == 1) & (sob < 0)))

    def resume_pass(self, slot: int, limit: int = -1) -> int:
        """Start searches in up to `limit` (< 0: all) odd blocks of `slot` still without one
        (blocks evened meanwhile by the cascade effect are skipped); return how many."""
        return int(_start_odd_entry_kernel(slot, limit, *self._args()))

    def requests(self) -> np.ndarray:
        """The left half of every active search as flat int32 (slot, start, end) triples."""
        ranges = np.empty(3 * int(self.cnt[_NS]), dtype=np.int32)
        _requests_kernel(self.srch, ranges)
        return ranges

    def apply_replies(self, packed_parities: np.ndarray) -> None:
        """Advance every active search with Alice's left-half parities (in request order),
        packed like np.packbits (uint8, exactly ceil(searches / 8) bytes)."""
        ns = int(self.cnt[_NS])
        if packed_parities.dtype != np.uint8 or packed_parities.shape != ((ns + 7) // 8,):
            raise QkdInputError(f"{packed_parities.shape} packed replies for {ns} active searches")
        _bob_round_entry_kernel(packed_parities, ns, *self._args())

    @property
    def active_searches(self) -> int:
        """Binary searches waiting for a parity."""
        return int(self.cnt[_NS])

    @property
    def flips(self) -> int:
        """Bits Bob has flipped so far."""
        return int(self.cnt[_NFLIP])

    @property
    def overflowed(self) -> bool:
        """True when a work list overflowed (only with inconsistent parities): frame fails."""
        return bool(self.cnt[_STATUS] != STATUS_OK)

    def corrected_bits(self) -> np.ndarray:
        """Bob's key with all flips so far applied (uint8, original order)."""
        out = self.bits.copy()
        _apply_flips_kernel(out, self.fq[: self.cnt[_QTAIL]])
        return out
