"""Compiled in-process Cascade: Bob's driver, Alice's responder and the authenticated
channel between them in one numba call per frame.

The same protocol as `qkdctl.protocol.cascade_roles` (same messages, same shuffles, same
parities, same order of questions), so a frame gives bit-identical corrected keys, leakage
and round trips on either path; the Python message layer stays for TCP and as the
reference.  What differs is the wire form, which never leaves the process:

    frame = type (u8) | seq (u64 LE) | payload length (u32 LE) | payload | tag (u64 LE)
    tag   = SipHash-2-4_{k_dir}(type | seq | length | payload)

Types are the codes of `messages.LAYOUTS` (1 start, 2 pass, 3 ask, 4 parities, 5 done,
6 confirm request, 7 confirm tag, 8 confirm result); payloads are their int64 fields, the
(slot, start, end) int32 triples of an ask, or count + packed parities (np.packbits
order).  Each direction has its own 128-bit SipHash key (k_dir) and sequence counter.
On receipt each frame is checked in this order: its length against the length field, the
MAC, the sequence number (replayed / reordered), the type expected in the receiver's
state, then every payload field (as `CascadeAliceResponder` and `bob_role` check them).
The first defect stops the whole session: the detecting party sends nothing more.

Key: 32 bytes per session from each party's `KeyPool` (k_{B->A} then k_{A->B}), 0 per
message.  The confirmation tag is SipHash-2-4 keyed by Alice's fresh 16-byte salt over
(Bob's / Alice's key packed, n as u64 LE): 64 bits, like the Python path's BLAKE2b tag.

Fault hook (tests): `fault = (kind, k, byte)` acts on the k-th message sealed in the
session (both directions, from 0): "flip" flips bit 0 of byte `byte % frame length` on the
wire, "drop" drops it, "replay" delivers it twice, "reorder" delivers it after the next
message in its direction, "lie" flips bit 0 of payload byte `byte % payload length` before
the MAC (an authenticated peer sending a malformed message).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numba import njit

from qkdctl.core.errors import ProtocolError, QkdInputError
# numba's cache keys on this file's content only: after editing the kernels imported from
# cascade.py, remove __pycache__/cascade_session.* (or this file's cached code stays stale).
from qkdctl.core.reconcile.cascade import (
    CascadeBobState, _arena_views, _bob_round_kernel, _half_inverse_pack_kernel,
    _half_pack_kernel, _packed_range_parities_kernel, _range_parity, _set_roots_kernel,
    _shuffle_inverse_pack_kernel, _shuffle_pack_kernel, _start_odd_blocks_kernel, check_bits,
    words_for,
)
from qkdctl.core.reconcile.cascade_variants import CascadeVariant
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.siphash import _siphash24_kernel

SESSION_KEY_BYTES = 32
MAX_BICONF_ROUNDS = 200
FAULTS = {"flip": 1, "drop": 2, "replay": 3, "reorder": 4, "lie": 5}
LOG_MESSAGES = 4096

T_START, T_PASS, T_ASK, T_PARITIES, T_DONE, T_CREQ, T_CTAG, T_CRES = range(1, 9)
_HDR = 13
_OVERHEAD = 21
_MAXQ = 4
# q[d, :]: frames queued, (offset, length) of up to _MAXQ frames, tail, held flag/offset/length
_QN, _QTAIL, _QHELD, _QHOFF, _QHLEN = 0, 1 + 2 * _MAXQ, 2 + 2 * _MAXQ, 3 + 2 * _MAXQ, 4 + 2 * _MAXQ
# ch[]: channel, Alice's and Bob's state
(_SEQ_OUT_B, _SEQ_IN_A, _SEQ_OUT_A, _SEQ_IN_B, _MSGS, _BYTES, _RT, _SENT, _GLOBAL, _PARSENT,
 _ERR, _ERR_SEQ, _ERR_DETAIL, _ERR_PARTY, _A_PHASE, _A_SEED, _A_SLOTS, _A_INDEX, _A_DISCLOSED,
 _A_VERDICT, _LEAKED, _INDEX, _PROUNDS, _TOTAL_PAR, _BICONF, _COMPLETED, _CONFIRM_OK,
 _BUFCAP, _CH_LEN) = range(29)

E_NO_MESSAGE, E_TRUNCATED, E_LENGTH, E_MAC, E_REPLAY, E_REORDER, E_KIND, E_FIELD = range(1, 9)
E_HALF, E_DISCLOSE, E_RANGE, E_COUNT, E_INTERNAL = range(9, 14)
FIELD_NAMES = ("", "n", "seed", "slots", "index", "slot", "k", "blocks", "halves", "payload length",
               "ok")
(_F_N, _F_SEED, _F_SLOTS, _F_INDEX, _F_SLOT, _F_K, _F_BLOCKS, _F_HALVES, _F_PLEN,
 _F_OK) = range(1, 11)
_PARTY = ("Alice", "Bob")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _put_u64(buf, o, v):
    for t in range(8):
        buf[o + t] = np.uint8((v >> np.uint64(8 * t)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _get_u64(buf, o):
    acc = np.uint64(0)
    for t in range(8):
        acc |= np.uint64(buf[o + t]) << np.uint64(8 * t)
    return acc


@njit(cache=True, inline="always")
def _put_u32(buf, o, v):
    for t in range(4):
        buf[o + t] = np.uint8((v >> (8 * t)) & 0xFF)


@njit(cache=True, inline="always")
def _get_u32(buf, o):
    return (np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8) | (np.int64(buf[o + 2]) << 16)
            | (np.int64(buf[o + 3]) << 24))


@njit(cache=True, inline="always")
def _pass_seed(frame_seed, index):
    """`cascade.pass_seed` in uint64 arithmetic."""
    z = frame_seed + np.uint64(index + 1) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _fail(ch, party, code, seq, detail):
    if ch[_ERR] == 0:
        ch[_ERR] = code
        ch[_ERR_PARTY] = party
        ch[_ERR_SEQ] = seq
        ch[_ERR_DETAIL] = detail


@njit(cache=True)
def _reserve(d, q, ch, need):
    """Offset where the next frame of direction d (0: Bob->Alice, 1: Alice->Bob) goes."""
    off = q[d, _QTAIL]
    if off + need > ch[_BUFCAP]:
        _fail(ch, d ^ 1, E_INTERNAL, 0, need)
        return -1
    return off


@njit(cache=True)
def _enqueue(d, q, off, flen):
    i = q[d, _QN]
    if i < _MAXQ:
        q[d, 1 + 2 * i] = off
        q[d, 2 + 2 * i] = flen
        q[d, _QN] = i + 1


@njit(cache=True)
def _seal(d, typ, off, plen, bufs, q, ch, keys, fault, log):
    """Header and tag around the payload already at bufs[d, off + 13:], count, queue
    (nothing is sent once the session has stopped on a defect)."""
    if ch[_ERR] != 0:
        return
    buf = bufs[d]
    g = ch[_GLOBAL]
    kind = fault[0] if g == fault[1] else 0
    if kind == 5 and plen > 0:  # a lying peer: payload changed before the MAC
        buf[off + _HDR + fault[2] % plen] ^= np.uint8(1)
    seq_slot = _SEQ_OUT_B if d == 0 else _SEQ_OUT_A
    seq = ch[seq_slot]
    ch[seq_slot] = seq + 1
    buf[off] = np.uint8(typ)
    _put_u64(buf, off + 1, np.uint64(seq))
    _put_u32(buf, off + 9, plen)
    row = d  # sender's copy of the keys: Bob's (row 0) for d = 0, Alice's (row 1) for d = 1
    tag = _siphash24_kernel(keys[row, 2 * d], keys[row, 2 * d + 1], buf, off, _HDR + plen)
    _put_u64(buf, off + _HDR + plen, tag)
    flen = _OVERHEAD + plen
    ch[_MSGS] += 1
    ch[_BYTES] += flen
    if d == 0:
        ch[_SENT] = 1
    count = 0
    if d == 1 and typ == T_PARITIES:
        count = np.int64(_get_u64(buf, off + _HDR))
        ch[_PARSENT] += count
    ch[_GLOBAL] = g + 1
    if g < log.shape[0]:
        log[g, 0] = typ
        log[g, 1] = count
    q[d, _QTAIL] = off + flen
    if kind == 1:
        buf[off + fault[2] % flen] ^= np.uint8(1)
    if kind == 2:
        return
    if kind == 4:
        q[d, _QHELD] = 1
        q[d, _QHOFF] = off
        q[d, _QHLEN] = flen
        return
    _enqueue(d, q, off, flen)
    if kind == 3:
        _enqueue(d, q, off, flen)
    if q[d, _QHELD] == 1 and q[d, _QHOFF] != off:
        _enqueue(d, q, q[d, _QHOFF], q[d, _QHLEN])
        q[d, _QHELD] = 0


@njit(cache=True)
def _open(d, bufs, q, ch, keys):
    """Pop and check the next frame of direction d; return its offset (-1 on a defect)."""
    party = d  # receiver: Alice (0) for d = 0, Bob (1) for d = 1
    if ch[_ERR] != 0:
        return -1
    if q[d, _QN] == 0:
        _fail(ch, party, E_NO_MESSAGE, 0, 0)
        return -1
    off = q[d, 1]
    flen = q[d, 2]
    for i in range(1, q[d, _QN]):
        q[d, 2 * i - 1] = q[d, 2 * i + 1]
        q[d, 2 * i] = q[d, 2 * i + 2]
    q[d, _QN] -= 1
    if q[d, _QN] == 0 and q[d, _QHELD] == 0:
        q[d, _QTAIL] = 0  # the frame stays readable until the next reserve
    buf = bufs[d]
    if flen < _OVERHEAD:
        _fail(ch, party, E_TRUNCATED, 0, flen)
        return -1
    plen = _get_u32(buf, off + 9)
    seq = np.int64(_get_u64(buf, off + 1))
    if _OVERHEAD + plen != flen:
        _fail(ch, party, E_LENGTH, seq, flen)
        return -1
    row = 1 - d  # receiver's copy of the keys
    tag = _siphash24_kernel(keys[row, 2 * d], keys[row, 2 * d + 1], buf, off, _HDR + plen)
    if tag != _get_u64(buf, off + _HDR + plen):
        _fail(ch, party, E_MAC, seq, 0)
        return -1
    seq_slot = _SEQ_IN_A if d == 0 else _SEQ_IN_B
    if seq != ch[seq_slot]:
        _fail(ch, party, E_REPLAY if seq < ch[seq_slot] else E_REORDER, seq, ch[seq_slot])
        return -1
    ch[seq_slot] = seq + 1
    if d == 1 and ch[_SENT] == 1:
        ch[_RT] += 1
        ch[_SENT] = 0
    return off


@njit(cache=True, inline="always")
def _key_tag(bits, pack, salt, s):
    """SipHash-2-4 keyed by salt[s:s + 16] of (bits packed MSB first, n as u64 LE)."""
    n = bits.shape[0]
    nb = (n + 7) // 8
    for i in range(nb):
        pack[i] = 0
    for i in range(n):
        pack[i >> 3] |= np.uint8(bits[i] << (7 - (i & 7)))
    _put_u64(pack, nb, np.uint64(n))
    return _siphash24_kernel(_get_u64(salt, s), _get_u64(salt, s + 8), pack, 0, nb + 8)


@njit(cache=True)
def _alice_handle(off, abits, apack, awords, ascratch, abegun, aranges, salt, bufs, q, ch, keys,
                  fault, log):
    """Alice's answer to Bob's frame at bufs[0, off] (already MAC- and sequence-checked)."""
    buf = bufs[0]
    n = abits.shape[0]
    typ = np.int64(buf[off])
    seq = ch[_SEQ_IN_A] - 1
    plen = _get_u32(buf, off + 9)
    p = off + _HDR
    phase = ch[_A_PHASE]
    if phase == 0:
        if typ != T_START:
            _fail(ch, 0, E_KIND, seq, typ)
        elif plen != 24:
            _fail(ch, 0, E_FIELD, seq, _F_PLEN)
        elif np.int64(_get_u64(buf, p)) != n:
            _fail(ch, 0, E_FIELD, seq, _F_N)
        elif np.int64(_get_u64(buf, p + 8)) < 0:
            _fail(ch, 0, E_FIELD, seq, _F_SEED)
        else:
            slots = np.int64(_get_u64(buf, p + 16))
            if slots < 1 or slots > awords.shape[0]:
                _fail(ch, 0, E_FIELD, seq, _F_SLOTS)
                return
            ch[_A_SEED] = np.int64(_get_u64(buf, p + 8))
            ch[_A_SLOTS] = slots
            abegun[:] = False
            ch[_A_PHASE] = 1
        return
    if phase == 1:
        if typ == T_DONE:
            if plen != 0:
                _fail(ch, 0, E_FIELD, seq, _F_PLEN)
            else:
                ch[_A_PHASE] = 2
            return
        if typ == T_PASS:
            if plen != 40:
                _fail(ch, 0, E_FIELD, seq, _F_PLEN)
                return
            index = np.int64(_get_u64(buf, p))
            slot = np.int64(_get_u64(buf, p + 8))
            halves = np.int64(_get_u64(buf, p + 16))
            k = np.int64(_get_u64(buf, p + 24))
            blocks = np.int64(_get_u64(buf, p + 32))
            if index != ch[_A_INDEX]:
                _fail(ch, 0, E_FIELD, seq, _F_INDEX)
            elif slot < 0 or slot >= ch[_A_SLOTS]:
                _fail(ch, 0, E_FIELD, seq, _F_SLOT)
            elif k < 1 or k > n:
                _fail(ch, 0, E_FIELD, seq, _F_K)
            elif blocks < 1 or blocks > -(-n // k):
                _fail(ch, 0, E_FIELD, seq, _F_BLOCKS)
            elif halves < 0 or halves > 1:
                _fail(ch, 0, E_FIELD, seq, _F_HALVES)
            if ch[_ERR] != 0:
                return
            seed = _pass_seed(np.uint64(ch[_A_SEED]), index)
            if halves == 1:
                if _half_pack_kernel(seed, abits, ascratch, awords[slot]) != k:
                    _fail(ch, 0, E_HALF, seq, k)
                    return
            else:
                _shuffle_pack_kernel(seed, abits, ascratch, awords[slot])
            abegun[slot] = True
            ch[_A_INDEX] += 1
            if ch[_A_DISCLOSED] + blocks > n:
                _fail(ch, 0, E_DISCLOSE, seq, blocks)
                return
            nbytes = (blocks + 7) // 8
            o = _reserve(1, q, ch, _OVERHEAD + 8 + nbytes)
            if o < 0:
                return
            rb = bufs[1]
            _put_u64(rb, o + _HDR, np.uint64(blocks))
            out = rb[o + _HDR + 8:o + _HDR + 8 + nbytes]
            out[:] = 0
            words = awords[slot]
            for b in range(blocks):
                s = b * k
                out[b >> 3] |= np.uint8(_range_parity(words, s, min(n, s + k)) << (7 - (b & 7)))
            ch[_A_DISCLOSED] += blocks
            _seal(1, T_PARITIES, o, 8 + nbytes, bufs, q, ch, keys, fault, log)
            return
        if typ == T_ASK:
            count = plen // 12
            if plen % 12 != 0 or count == 0:
                _fail(ch, 0, E_FIELD, seq, _F_PLEN)
                return
            if ch[_A_DISCLOSED] + count > n:
                _fail(ch, 0, E_DISCLOSE, seq, count)
                return
            for i in range(3 * count):
                aranges[i] = np.int32(_get_u32(buf, p + 4 * i))
            nbytes = (count + 7) // 8
            o = _reserve(1, q, ch, _OVERHEAD + 8 + nbytes)
            if o < 0:
                return
            rb = bufs[1]
            out = rb[o + _HDR + 8:o + _HDR + 8 + nbytes]
            out[:] = 0
            bad = _packed_range_parities_kernel(awords, abegun, n, aranges[:3 * count], out)
            if bad >= 0:
                _fail(ch, 0, E_RANGE, seq, bad)
                return
            _put_u64(rb, o + _HDR, np.uint64(count))
            ch[_A_DISCLOSED] += count
            _seal(1, T_PARITIES, o, 8 + nbytes, bufs, q, ch, keys, fault, log)
            return
        _fail(ch, 0, E_KIND, seq, typ)
        return
    if phase == 2:
        if typ != T_CREQ:
            _fail(ch, 0, E_KIND, seq, typ)
            return
        if plen != 0:
            _fail(ch, 0, E_FIELD, seq, _F_PLEN)
            return
        o = _reserve(1, q, ch, _OVERHEAD + 24)
        if o < 0:
            return
        rb = bufs[1]
        rb[o + _HDR:o + _HDR + 16] = salt
        _put_u64(rb, o + _HDR + 16, _key_tag(abits, apack, salt, 0))
        ch[_A_PHASE] = 3
        _seal(1, T_CTAG, o, 24, bufs, q, ch, keys, fault, log)
        return
    if phase == 3 and typ == T_CRES:
        ok = np.int64(_get_u64(buf, p)) if plen == 8 else -1
        if ok < 0 or ok > 1:
            _fail(ch, 0, E_FIELD, seq, _F_OK)
            return
        ch[_A_VERDICT] = ok
        ch[_A_PHASE] = 4
        return
    _fail(ch, 0, E_KIND, seq, typ)


@njit(cache=True)
def _bob_send(typ, o, plen, abits, apack, awords, ascratch, abegun, aranges, salt, bufs, q, ch,
              keys, fault, log):
    """Seal Bob's frame at bufs[0, o]; Alice reads and answers every frame she has."""
    _seal(0, typ, o, plen, bufs, q, ch, keys, fault, log)
    while q[0, _QN] > 0 and ch[_ERR] == 0:
        off = _open(0, bufs, q, ch, keys)
        if off >= 0:
            _alice_handle(off, abits, apack, awords, ascratch, abegun, aranges, salt, bufs, q, ch,
                          keys, fault, log)


@njit(cache=True)
def _bob_reply(bufs, q, ch, keys):
    """Open Alice's one reply; a second frame behind it (Alice answers each question once)
    is checked at once and is a defect (replayed, or an unexpected message)."""
    off = _open(1, bufs, q, ch, keys)
    if off >= 0 and q[1, _QN] > 0:
        extra = _open(1, bufs, q, ch, keys)
        if extra >= 0:
            _fail(ch, 1, E_KIND, ch[_SEQ_IN_B] - 1, np.int64(bufs[1, extra]))
        return -1
    return off


@njit(cache=True)
def _bob_parities(expected, bufs, q, ch, keys):
    """Offset of the packed parities in Alice's reply to `expected` questions (-1: defect)."""
    off = _bob_reply(bufs, q, ch, keys)
    if off < 0:
        return -1
    buf = bufs[1]
    seq = ch[_SEQ_IN_B] - 1
    plen = _get_u32(buf, off + 9)
    if buf[off] != T_PARITIES:
        _fail(ch, 1, E_KIND, seq, np.int64(buf[off]))
        return -1
    if plen < 8:
        _fail(ch, 1, E_FIELD, seq, _F_PLEN)
        return -1
    count = np.int64(_get_u64(buf, off + _HDR))
    if count != expected:
        _fail(ch, 1, E_COUNT, seq, count)
        return -1
    if plen != 8 + (expected + 7) // 8:
        _fail(ch, 1, E_FIELD, seq, _F_PLEN)
        return -1
    return off + _HDR + 8


@njit(cache=True, nogil=True)
def _session_kernel(abits, bbits, current, seed, salt, keys, fault, params, ksize0, halves,
                    nblocks, words, tree, live, i64, i32, lay, apack, bufs, q, ch, log, awords,
                    ascratch, abegun, aranges, parbuf):
    """One frame; the work arrays are reset here (a slot's tree when its pass begins), so a
    workspace serves frame after frame."""
    ksize, tree_off, tsize, blk_off, cnt, fq, srch, defer, perm, pos, sob = _arena_views(
        i64, i32, lay)
    npasses, streak_target, infer, wave_divisor = params[0], params[1], params[2], params[3]
    ksize[:] = ksize0
    cnt[:] = 0
    sob[:] = -1
    live[:] = 0
    q[:, :] = 0
    ch[:] = 0
    ch[_BUFCAP] = bufs.shape[1]
    n = bbits.shape[0]
    slots = ksize.shape[0]
    o = _reserve(0, q, ch, _OVERHEAD + 24)
    if o < 0:
        return
    b0 = bufs[0]
    _put_u64(b0, o + _HDR, np.uint64(n))
    _put_u64(b0, o + _HDR + 8, seed)
    _put_u64(b0, o + _HDR + 16, np.uint64(slots))
    _bob_send(T_START, o, 24, abits, apack, awords, ascratch, abegun, aranges, salt,
              bufs, q, ch, keys, fault, log)
    ch[_TOTAL_PAR] = -1
    completed = ch[_ERR] == 0
    biconf_rounds = 0
    streak = 0
    p = 0
    while completed and ch[_ERR] == 0:
        biconf = p >= npasses
        if biconf and streak >= streak_target:
            break
        slot = min(p, slots - 1)
        first_only = biconf
        # begin_pass: shuffle (or halve) and pack Bob's current key into the slot
        pseed = _pass_seed(seed, ch[_INDEX])
        current[:] = bbits
        for i in range(cnt[6]):
            current[fq[i]] ^= 1
        if halves[slot]:
            ksize[slot] = _half_inverse_pack_kernel(pseed, current, perm[slot], pos[slot],
                                                    words[slot])
        else:
            _shuffle_inverse_pack_kernel(pseed, current, perm[slot], pos[slot], words[slot])
        lo = tree_off[slot]
        tree[lo:lo + nblocks[slot] * tsize[slot]] = -1
        cnt[4] = max(cnt[4], slot + 1)
        k = ksize[slot]
        blocks = 1 if first_only else -(-n // k)
        inferred = infer != 0 and ch[_TOTAL_PAR] >= 0 and blocks > 1
        asked = blocks - 1 if inferred else blocks
        odd = -1
        if ch[_LEAKED] + asked <= n:
            o = _reserve(0, q, ch, _OVERHEAD + 40)
            if o < 0:
                break
            _put_u64(b0, o + _HDR, np.uint64(ch[_INDEX]))
            _put_u64(b0, o + _HDR + 8, np.uint64(slot))
            _put_u64(b0, o + _HDR + 16, np.uint64(halves[slot]))
            _put_u64(b0, o + _HDR + 24, np.uint64(k))
            _put_u64(b0, o + _HDR + 32, np.uint64(asked))
            _bob_send(T_PASS, o, 40, abits, apack, awords, ascratch, abegun, aranges, salt,
                      bufs, q, ch, keys, fault, log)
            ch[_INDEX] += 1
            r = _bob_parities(asked, bufs, q, ch, keys)
            if r < 0:
                break
            b1 = bufs[1]
            total = 0
            for i in range(asked):
                v = (b1[r + (i >> 3)] >> (7 - (i & 7))) & 1
                parbuf[i] = v
                total += v
            ch[_LEAKED] += asked
            npar = asked
            if inferred:
                parbuf[asked] = np.uint8((ch[_TOTAL_PAR] + total) & 1)
                npar = asked + 1
            elif ch[_TOTAL_PAR] < 0 and not first_only:
                ch[_TOTAL_PAR] = total & 1
            ch[_PROUNDS] += 1
            divisor = wave_divisor if slot > 0 else 1
            odd = _set_roots_kernel(slot, parbuf[:npar], n, words, ksize, tree, tree_off, tsize)
            _start_odd_blocks_kernel(slot, -1 if divisor == 1 else 0, n, words, perm, pos, ksize,
                                     tree, tree_off, tsize, sob, blk_off, srch, live, fq, defer,
                                     cnt)
            while cnt[3] == 0:
                if cnt[0] == 0:
                    waiting = 0
                    if divisor > 1:
                        ts = tsize[slot]
                        for bl in range(-(-n // ksize[slot])):
                            if tree[lo + 1 + bl * ts] == 1 and sob[blk_off[slot] + bl] < 0:
                                waiting += 1
                    if waiting == 0:
                        break
                    _start_odd_blocks_kernel(slot, -(-waiting // divisor), n, words, perm, pos,
                                             ksize, tree, tree_off, tsize, sob, blk_off, srch,
                                             live, fq, defer, cnt)
                    continue
                ns = cnt[0]
                if ch[_LEAKED] + ns > n:
                    odd = -1
                    break
                o = _reserve(0, q, ch, _OVERHEAD + 12 * ns)
                if o < 0:
                    break
                for i in range(ns):
                    s = srch[i, 3]
                    w = o + _HDR + 12 * i
                    _put_u32(b0, w, srch[i, 0])
                    _put_u32(b0, w + 4, s)
                    _put_u32(b0, w + 8, s + (srch[i, 4] - s + 1) // 2)
                _bob_send(T_ASK, o, 12 * ns, abits, apack, awords, ascratch, abegun, aranges,
                          salt, bufs, q, ch, keys, fault, log)
                r = _bob_parities(ns, bufs, q, ch, keys)
                if r < 0:
                    break
                ch[_LEAKED] += ns
                ch[_PROUNDS] += 1
                _bob_round_kernel(bufs[1, r:r + (ns + 7) // 8], ns, n, words, perm, pos, ksize,
                                  tree, tree_off, tsize, sob, blk_off, srch, live, fq, defer, cnt)
            if cnt[3] != 0:
                odd = -1
        if ch[_ERR] != 0:
            break
        if biconf:
            biconf_rounds += 1
            if odd < 0 or biconf_rounds > MAX_BICONF_ROUNDS:
                completed = False
                break
            streak = streak + 1 if odd == 0 else 0
        elif odd < 0:
            completed = False
            break
        p += 1
    if ch[_ERR] != 0:
        return
    ch[_COMPLETED] = 1 if completed else 0
    ch[_BICONF] = biconf_rounds
    current[:] = bbits
    for i in range(cnt[6]):
        current[fq[i]] ^= 1
    o = _reserve(0, q, ch, _OVERHEAD)
    if o < 0:
        return
    _bob_send(T_DONE, o, 0, abits, apack, awords, ascratch, abegun, aranges, salt,
              bufs, q, ch, keys, fault, log)
    if ch[_ERR] != 0:
        return
    o = _reserve(0, q, ch, _OVERHEAD)
    if o < 0:
        return
    _bob_send(T_CREQ, o, 0, abits, apack, awords, ascratch, abegun, aranges, salt,
              bufs, q, ch, keys, fault, log)
    off = _bob_reply(bufs, q, ch, keys)
    if off < 0:
        return
    b1 = bufs[1]
    if b1[off] != T_CTAG or _get_u32(b1, off + 9) != 24:
        _fail(ch, 1, E_KIND if b1[off] != T_CTAG else E_FIELD, ch[_SEQ_IN_B] - 1,
              np.int64(b1[off]) if b1[off] != T_CTAG else _F_PLEN)
        return
    ok = _key_tag(current, apack, b1, off + _HDR) == _get_u64(b1, off + _HDR + 16)
    ch[_CONFIRM_OK] = 1 if ok else 0
    o = _reserve(0, q, ch, _OVERHEAD + 8)
    if o < 0:
        return
    _put_u64(b0, o + _HDR, np.uint64(1 if ok else 0))
    _bob_send(T_CRES, o, 8, abits, apack, awords, ascratch, abegun, aranges, salt,
              bufs, q, ch, keys, fault, log)
    if ch[_A_PHASE] != 4:  # Alice never got the verdict
        _fail(ch, 0, E_NO_MESSAGE, ch[_SEQ_IN_A], 0)


@dataclass
class SessionOutcome:
    """A compiled session's result and accounting (error: why it stopped, else None)."""

    bob_bits: np.ndarray
    leaked_bits: int
    confirmed: bool
    extra: dict
    messages: int
    bytes: int
    round_trips: int
    parity_bits_sent: int
    auth_key_bytes: int
    error: str | None
    log: np.ndarray


def _error_text(ch: np.ndarray) -> str | None:
    code = int(ch[_ERR])
    if code == 0:
        return None
    who, seq, detail = _PARTY[int(ch[_ERR_PARTY])], int(ch[_ERR_SEQ]), int(ch[_ERR_DETAIL])
    field = FIELD_NAMES[detail] if code == E_FIELD else ""
    what = {
        E_NO_MESSAGE: "no message from peer (dropped or held back)",
        E_TRUNCATED: f"truncated frame of {detail} bytes",
        E_LENGTH: f"frame {seq}: length field disagrees with the {detail}-byte frame",
        E_MAC: f"bad MAC on message {seq}",
        E_REPLAY: f"replayed message: sequence {seq}, expected {detail}",
        E_REORDER: f"reordered message: sequence {seq}, expected {detail}",
        E_KIND: f"unexpected message type {detail} (message {seq})",
        E_FIELD: f"message {seq}: field {field!r} out of range",
        E_HALF: f"message {seq}: peer's half split has {detail} bits, ours differs",
        E_DISCLOSE: f"message {seq}: peer asked for more than n parities in one frame",
        E_RANGE: f"message {seq}: bad parity request {detail}: not a non-empty range of a "
                 "begun pass",
        E_COUNT: f"message {seq}: {detail} parities received, a different number asked",
        E_INTERNAL: f"session buffer too small for a {detail}-byte frame",
    }[code]
    return f"{who} stopped the session: {what}"


class _Workspace:
    """The arrays of one (variant, n, qber estimate) session, reused frame after frame by
    one thread (the kernel resets them)."""

    def __init__(self, variant: CascadeVariant, n: int, qber_estimate: float) -> None:
        self.key = (variant, n, qber_estimate)
        self.sizes = variant.block_sizes(qber_estimate, n)
        biconf_slot = len(self.sizes)
        slot_sizes = self.sizes + ([max(1, n // 2)] if variant.biconf_streak else [])
        halves = [(i >= 2 and variant.later == "half") or i == biconf_slot
                  for i in range(len(slot_sizes))]
        self.state = state = CascadeBobState(np.zeros(n, np.uint8), slot_sizes,
                                             variant.block_reuse, halves)
        slots = len(slot_sizes)
        cap = int(state._lay[2])
        bufcap = (_MAXQ + 1) * (_OVERHEAD + max(40, 12 * cap, 16 + (max(n, cap) + 7) // 8))
        params = np.array([len(self.sizes), variant.biconf_streak, int(variant.infer_last_block),
                           variant.wave_divisor], dtype=np.int64)
        self.arrays = (
            params, state.ksize.copy(), np.array(halves, dtype=np.uint8),
            state.nblocks.astype(np.int64), state.words, state.tree, state.live, state._i64,
            state._i32, state._lay, np.zeros((n + 7) // 8 + 8, np.uint8),
            np.zeros((2, bufcap), dtype=np.uint8), np.zeros((2, _QHLEN + 1), dtype=np.int64),
            np.zeros(_CH_LEN, dtype=np.int64), np.zeros((LOG_MESSAGES, 2), dtype=np.int64),
            np.zeros((slots, words_for(n)), dtype=np.uint64), np.empty(n, dtype=np.uint8),
            np.zeros(slots, dtype=np.bool_), np.empty(3 * (bufcap // 12 + 1), dtype=np.int32),
            np.zeros(int(state.nblocks.max()) + 1, dtype=np.uint8))
        self.ch = self.arrays[13]
        self.log = self.arrays[14]


_local = threading.local()


def _workspace(variant: CascadeVariant, n: int, qber_estimate: float) -> _Workspace:
    ws = getattr(_local, "workspace", None)
    if ws is None or ws.key != (variant, n, qber_estimate):
        ws = _Workspace(variant, n, qber_estimate)
        _local.workspace = ws
    return ws


def run_session(variant: CascadeVariant, alice_bits: np.ndarray, bob_bits: np.ndarray,
                qber_estimate: float, alice_pool: KeyPool, bob_pool: KeyPool, seed: int,
                salt: bytes, fault: tuple[str, int, int] | None = None) -> SessionOutcome:
    """Run one frame of Cascade `variant` in compiled code (see module doc): frame shuffle
    seed `seed` (0 <= seed < 2^63, Bob's), confirmation `salt` (16 bytes, Alice's), fault
    (kind in FAULTS, message index, byte) for tests.  Errors are returned, not raised."""
    a = check_bits(alice_bits)
    b = check_bits(bob_bits)
    if a.shape != b.shape:
        raise QkdInputError(f"keys differ in length: {a.size} != {b.size}")
    if not 0 <= seed < 2**63 or len(salt) != 16:
        raise QkdInputError("seed must be in [0, 2^63) and salt 16 bytes")
    fault_arr = np.array([0, -1, 0], dtype=np.int64)
    if fault is not None:
        if fault[0] not in FAULTS:
            raise QkdInputError(f"unknown fault {fault[0]!r}; use one of {sorted(FAULTS)}")
        fault_arr[:] = (FAULTS[fault[0]], fault[1], fault[2])
    ws = _workspace(variant, b.size, qber_estimate)
    raw = bob_pool.take(SESSION_KEY_BYTES) + alice_pool.take(SESSION_KEY_BYTES)
    keys = np.frombuffer(raw, dtype="<u8").reshape(2, 4).astype(np.uint64)
    current = np.empty(b.size, dtype=np.uint8)
    _session_kernel(a, b, current, np.uint64(seed), np.frombuffer(bytes(salt), dtype=np.uint8),
                    keys, fault_arr, *ws.arrays)
    ch = ws.ch
    return SessionOutcome(
        bob_bits=current, leaked_bits=int(ch[_LEAKED]), confirmed=bool(ch[_CONFIRM_OK]),
        extra={"variant": variant.name, "completed": bool(ch[_COMPLETED]),
               "passes": int(ch[_INDEX]), "biconf_rounds": int(ch[_BICONF]),
               "parity_rounds": int(ch[_PROUNDS]), "bits_flipped": ws.state.flips,
               "block_sizes": list(ws.sizes)},
        messages=int(ch[_MSGS]), bytes=int(ch[_BYTES]), round_trips=int(ch[_RT]),
        parity_bits_sent=int(ch[_PARSENT]), auth_key_bytes=SESSION_KEY_BYTES,
        error=_error_text(ch), log=ws.log[:min(int(ch[_GLOBAL]), LOG_MESSAGES)].copy())


def compiled_role(variant: CascadeVariant, alice_bits: np.ndarray, bob_bits: np.ndarray,
                  qber_estimate: float, alice_pool: KeyPool, bob_pool: KeyPool,
                  alice_rng: np.random.Generator,
                  bob_rng: np.random.Generator) -> SessionOutcome:
    """Both roles in one compiled session, drawing Bob's frame seed and Alice's salt as the
    Python roles do; ProtocolError when the session stopped on a defect."""
    seed = int(bob_rng.integers(0, 2**63))
    salt = alice_rng.bytes(16)
    out = run_session(variant, alice_bits, bob_bits, qber_estimate, alice_pool, bob_pool, seed,
                      salt)
    if out.error is not None:
        raise ProtocolError(out.error)
    return out
