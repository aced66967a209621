"""Basis sifting of gated detections against Alice's record, with double-click squashing.

Bob's basis choice is passive: H/V clicks measure Z (bit 0/1), D/A clicks measure
X (bit 0/1).  All clicks of one slot form a 4-bit mask (H=1, V=2, D=4, A=8):
- one click: its basis and bit;
- two clicks in one basis (H+V or D+A): that basis, random bit;
- clicks in both bases (any 2, 3 or 4 clicks spanning Z and X): random basis
  and random bit (squashing, so that the decoy analysis sees a qubit measurement).
Slots whose bases agree with Alice's are sifted.

The random choices of a slot come from SplitMix64 (Steele, Lea, Flood, OOPSLA
2014) at stream position `slot`, keyed by one 64-bit draw from the caller's
Generator: reproducible for a given Generator, and independent of how the tag
stream is split into passes.  Basis choice = top bit, bit value = next bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from qkdctl.core.constants import BASIS_X, BASIS_Z, N_INTENSITIES
from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import (
    Clock,
    GateConfig,
    Gated,
    GateStats,
    TagBlock,
    GATE_CHUNK,
    _gate_range,
    gate_params,
    gate_scratch,
    gate_stats,
)

# Indices of the case counters filled by the kernels.
CASE_SINGLE = 0
CASE_DOUBLE_SAME = 1
CASE_DOUBLE_CROSS = 2
CASE_MULTI = 3
CASE_MISMATCH = 4
CASE_OUTSIDE = 5
_N_SIFTED_Z = 6
_N_SIFTED_X = 7

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class SiftedKey:
    """Sifted bits of one basis, in slot order.

    slot: int64 pulse slot; alice_bit, bob_bit: uint8; intensity: uint8 class of
    Alice's pulse (0 signal, 1 decoy, 2 vacuum).
    """

    slot: np.ndarray
    alice_bit: np.ndarray
    bob_bit: np.ndarray
    intensity: np.ndarray

    def __len__(self) -> int:
        return int(self.slot.size)


@dataclass(frozen=True)
class SiftCounts:
    """Clicked slots inside Alice's record by case, plus the ones outside it.

    single / double_same / double_cross / multi (3 or 4 clicks) partition the
    clicked slots inside the record; basis_mismatch of them were dropped after
    squashing; outside_record: clicked slots with no entry in Alice's record.
    """

    single: int
    double_same: int
    double_cross: int
    multi: int
    basis_mismatch: int
    outside_record: int

    @property
    def clicked(self) -> int:
        """Clicked slots inside Alice's record."""
        return self.single + self.double_same + self.double_cross + self.multi


@dataclass(frozen=True)
class SiftResult:
    """Output of sifting.

    z, x: sifted bits per basis.  counts: case counts.
    detections: int64[2, 3] clicked slots by Alice's basis and intensity (sifted
    or not).  pulses_sent: int64[2, 3] slots in Alice's record by basis and intensity.
    """

    z: SiftedKey
    x: SiftedKey
    counts: SiftCounts
    detections: np.ndarray
    pulses_sent: np.ndarray

    def basis(self, b: int) -> SiftedKey:
        """Sifted bits of basis b (0 = Z, 1 = X)."""
        if b == BASIS_Z:
            return self.z
        if b == BASIS_X:
            return self.x
        raise QkdInputError(f"basis must be 0 (Z) or 1 (X), got {b}")

    @property
    def sifted(self) -> np.ndarray:
        """int64[2, 3] sifted bits by basis and intensity."""
        return np.stack(
            [np.bincount(k.intensity, minlength=N_INTENSITIES) for k in (self.z, self.x)]
        ).astype(np.int64)


@njit(cache=True, inline="always")
def _splitmix64(key, slot):
    """SplitMix64 output number `slot` of the stream seeded with `key` (uint64)."""
    z = key + (np.uint64(slot) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


_RANDOM = 2  # marks a random choice in the mask rules


def _mask_rules() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per click mask 0..15: (case, Bob's basis, Bob's bit); _RANDOM marks a random choice."""
    case = np.zeros(16, dtype=np.int64)
    basis = np.zeros(16, dtype=np.int64)
    bit = np.zeros(16, dtype=np.int64)
    for mask in range(1, 16):
        zm, xm = mask & 3, mask >> 2
        if zm and xm:
            case[mask] = CASE_MULTI if 3 in (zm, xm) else CASE_DOUBLE_CROSS
            basis[mask], bit[mask] = _RANDOM, _RANDOM
        else:
            basis[mask] = BASIS_Z if xm == 0 else BASIS_X
            m = zm | xm
            case[mask] = CASE_DOUBLE_SAME if m == 3 else CASE_SINGLE
            bit[mask] = _RANDOM if m == 3 else m >> 1
    return case, basis, bit


_MASK_CASE, _MASK_BASIS, _MASK_BIT = _mask_rules()


@njit(cache=True, inline="always")
def _squash(mask, key, slot):
    """(case, Bob's basis, Bob's bit) of a slot's click mask; random choices from
    SplitMix64 at position `slot`."""
    b_basis = _MASK_BASIS[mask]
    b_bit = _MASK_BIT[mask]
    if b_bit == _RANDOM:
        r = _splitmix64(key, slot)
        if b_basis == _RANDOM:
            b_basis = np.int64(r >> np.uint64(63))
        b_bit = np.int64((r >> np.uint64(62)) & np.uint64(1))
    return _MASK_CASE[mask], b_basis, b_bit


@njit(cache=True)
def _sift_chunk(slot, role, state, key, a_basis, a_bit, a_int, first_slot,
                o_slot, o_abit, o_bbit, o_int, capacity, counts, detections):
    """Sift detections (slot non-decreasing), continuing the open slot in
    state = [slot, click mask]; a slot is finished when a later one starts (the
    caller finishes the last one with a sentinel detection, see _finish_last).
    With role None, slot holds slot * 4 + role packed.

    Finishing a slot looks up Alice, counts it in detections[3 * basis +
    intensity], and appends it to the flat outputs o_* at position n_z (Z) or
    capacity + n_x (X).  The entry is always written and the position advances
    only on a basis match: no unpredictable branch.  A single click gives Bob's
    basis and bit straight from its mask; only multi-click slots (rare) go through
    the squashing rules and their case counters.  Single clicks and basis
    mismatches are not counted here: they follow from the totals (see _finish_counts).
    One-dimensional outputs and few live counters keep the loop in registers.
    counts = [single, double same, double cross, multi, mismatch, outside record,
    sifted Z, sifted X].
    """
    n_alice = np.uint64(a_basis.size)
    cur = state[0]
    mask = np.uint64(state[1])
    pos_z = np.uint64(counts[_N_SIFTED_Z])
    pos_x = np.uint64(counts[_N_SIFTED_X]) + np.uint64(capacity)
    for i in range(slot.size):
        if role is None:
            v = slot[i]
            s = v >> 2
            r = np.uint64(v & 3)
        else:
            s = slot[i]
            r = np.uint64(role[i])
        if s == cur:
            mask |= np.uint64(1) << r
            continue
        if mask:
            idx = np.uint64(cur - first_slot)  # unsigned indices: no wraparound code
            if idx < n_alice:
                if mask & (mask - np.uint64(1)):  # two or more clicks: squash
                    case, b_basis, b_bit = _squash(mask, key, cur)
                    counts[case] += 1
                    b_basis = np.uint64(b_basis)
                    b_bit = np.uint64(b_bit)
                else:  # one click: H=1, V=2 (Z); D=4, A=8 (X); bit 1 for V and A
                    b_basis = np.uint64(mask > np.uint64(3))
                    b_bit = np.uint64((mask & np.uint64(10)) != np.uint64(0))
                ab = np.uint64(a_basis[idx])
                ai = a_int[idx]
                detections[ab * np.uint64(3) + ai] += 1
                k = pos_x if ab == np.uint64(BASIS_X) else pos_z
                o_slot[k] = cur
                o_abit[k] = a_bit[idx]
                o_bbit[k] = b_bit
                o_int[k] = ai
                match = np.uint64(ab == b_basis)
                pos_x += match & ab
                pos_z += match & (ab ^ np.uint64(1))
            else:
                counts[CASE_OUTSIDE] += 1
        cur = s
        mask = np.uint64(1) << r
    state[0] = cur
    state[1] = mask
    counts[_N_SIFTED_Z] = pos_z
    counts[_N_SIFTED_X] = pos_x - np.uint64(capacity)


@njit(cache=True)
def _finish_last(state, key, a_basis, a_bit, a_int, first_slot, o_slot, o_abit, o_bbit,
                 o_int, capacity, counts, detections):
    """Finish the open slot: sift one sentinel detection in the next slot (packed)."""
    sentinel = np.full(1, (state[0] + 1) << 2, dtype=np.int64)
    _sift_chunk(sentinel, None, state, key, a_basis, a_bit, a_int, first_slot, o_slot, o_abit,
                o_bbit, o_int, capacity, counts, detections)


def _finish_counts(counts: np.ndarray, detections: np.ndarray) -> None:
    """Fill the single-click and basis-mismatch counts the kernel leaves out: every
    clicked slot inside the record is in detections, and is sifted or mismatched."""
    clicked = int(detections.sum())
    counts[CASE_SINGLE] = clicked - counts[CASE_DOUBLE_SAME:CASE_MULTI + 1].sum()
    counts[CASE_MISMATCH] = clicked - counts[_N_SIFTED_Z] - counts[_N_SIFTED_X]


@njit(cache=True)
def _gate_sift_kernel(t, ch, lo, table, ref_ps, period_ps, inv_period, half_width_ps,
                      key, a_basis, a_bit, a_int, first_slot,
                      o_slot, o_abit, o_bbit, o_int, capacity, counts, detections, gstats,
                      pulses, buf, s_buf, c_buf):
    """Gate a chunk of tags into a small buffer of packed slot * 4 + role
    (cache-resident), sift it, count Alice's pulses over the record slots just
    swept (still in cache), repeat.

    The chunk size is the buffers' size, not a global: numba's cache of this file
    does not track other modules (after editing tags._gate_range, clear the cache).
    """
    n = t.size
    chunk = buf.size
    n_alice = a_basis.size
    done = 0  # Alice's slots [0, done) are in pulses
    state = np.zeros(2, dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        k = _gate_range(t[start:stop], ch[start:stop], lo, table, ref_ps, period_ps,
                        inv_period, half_width_ps, buf, None, None, gstats, s_buf, c_buf, None)
        _sift_chunk(buf[:k], None, state, key, a_basis, a_bit, a_int, first_slot,
                    o_slot, o_abit, o_bbit, o_int, capacity, counts, detections)
        upto = min(max(state[0] - first_slot, done), n_alice)
        _pulses_kernel(a_basis[done:upto], a_int[done:upto], pulses)
        done = upto
    _finish_last(state, key, a_basis, a_bit, a_int, first_slot, o_slot, o_abit, o_bbit, o_int,
                 capacity, counts, detections)
    _pulses_kernel(a_basis[done:], a_int[done:], pulses)


_ONES = np.uint64(0x0101010101010101)
_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)
_SUM_16 = np.uint64(0x0001000100010001)


@njit(cache=True, inline="always")
def _byte_sum(acc):
    """Sum of the 8 bytes of a uint64."""
    pairs = (acc & _LOW_BYTES) + ((acc >> np.uint64(8)) & _LOW_BYTES)
    return np.int64((pairs * _SUM_16) >> np.uint64(48))


@njit(cache=True)
def _pulses_kernel(basis, intensity, out):
    """out[b, k] += number of slots with basis b and intensity k.

    Eight slots per uint64 word (SWAR): byte counters in 5 words (X, decoy,
    vacuum, X and decoy, X and vacuum) for up to 255 words, then summed; relies
    on basis in {0, 1} and intensity in {0, 1, 2} (AliceRecord checks both), so
    decoy = intensity bit 0 and vacuum = intensity bit 1.
    """
    n = basis.size
    n_words = n // 8
    words_b = basis[:n_words * 8].view(np.uint64)
    words_i = intensity[:n_words * 8].view(np.uint64)
    tot_x = 0
    tot_1 = 0
    tot_2 = 0
    x_1 = 0
    x_2 = 0
    for lo in range(0, n_words, 255):  # a byte counter holds 255 words
        wb = words_b[lo:lo + 255]
        wi = words_i[lo:lo + 255]
        c_x = np.uint64(0)
        c_1 = np.uint64(0)
        c_2 = np.uint64(0)
        c_x1 = np.uint64(0)
        c_x2 = np.uint64(0)
        for i in range(wb.size):
            b = wb[i]
            c = wi[i]
            c_hi = c >> np.uint64(1)
            c_x += b
            c_1 += c & _ONES
            c_2 += c_hi & _ONES
            c_x1 += b & c
            c_x2 += b & c_hi
        tot_x += _byte_sum(c_x)
        tot_1 += _byte_sum(c_1)
        tot_2 += _byte_sum(c_2)
        x_1 += _byte_sum(c_x1)
        x_2 += _byte_sum(c_x2)
    for i in range(n_words * 8, n):
        b = np.int64(basis[i])
        c = np.int64(intensity[i])
        tot_x += b
        tot_1 += c & 1
        tot_2 += c >> 1
        x_1 += b & c
        x_2 += b & (c >> 1)
    out[1, 0] += tot_x - x_1 - x_2
    out[1, 1] += x_1
    out[1, 2] += x_2
    out[0, 1] += tot_1 - x_1
    out[0, 2] += tot_2 - x_2
    out[0, 0] += n - tot_x - (tot_1 - x_1) - (tot_2 - x_2)


def pulses_sent(alice: AliceRecord) -> np.ndarray:
    """int64[2, 3]: Alice's pulses by basis (0 Z, 1 X) and intensity class."""
    out = np.zeros((2, N_INTENSITIES), dtype=np.int64)
    _pulses_kernel(alice.basis, alice.intensity, out)
    return out


def _draw_key(rng: np.random.Generator) -> np.uint64:
    if not isinstance(rng, np.random.Generator):
        raise QkdInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return np.uint64(rng.integers(0, 2**64, dtype=np.uint64))


class SiftWorkspace:
    """Output buffers of sifting, kept by the caller across blocks.

    A pipeline hands the same workspace to every block so that the sifted-key
    arrays reuse memory that is already mapped (fresh pages cost the kernel a
    page fault and a zero-fill each).  The SiftResult of a call holds views into
    these buffers: it is valid until the next call with the same workspace (copy
    what must outlive it).  Buffers grow to the largest block seen.

    Layout: four flat arrays (slot int64; Alice's bit, Bob's bit, intensity
    uint8) of 2 * capacity entries, Z key at [0, n_z), X key at [capacity,
    capacity + n_x).
    """

    def __init__(self) -> None:
        self._capacity = 0
        self._out = self._allocate(0)
        self._chunk = (np.empty(GATE_CHUNK, np.int64), *gate_scratch(False)[:2])

    @staticmethod
    def _allocate(capacity: int) -> tuple[np.ndarray, ...]:
        # np.empty maps pages lazily: only the part the kernel writes takes memory.
        return (np.empty(2 * capacity, np.int64),
                *(np.empty(2 * capacity, np.uint8) for _ in range(3)))

    @property
    def capacity(self) -> int:
        """Sifted entries per basis the buffers hold."""
        return self._capacity

    def outputs(self, capacity: int) -> tuple:
        """(slot, alice_bit, bob_bit, intensity, capacity, zeroed counts[8], zeroed
        detections[6]) for a call that sifts at most `capacity` clicked slots."""
        if self._capacity < capacity:
            self._out = self._allocate(capacity)
            self._capacity = capacity
        return (*self._out, np.int64(self._capacity), np.zeros(8, dtype=np.int64),
                np.zeros(2 * N_INTENSITIES, dtype=np.int64))

    def chunk_buffers(self) -> tuple:
        """Per-chunk scratch of the fused kernel: (packed slot/role, gate slot, gate code)."""
        return self._chunk


def _workspace(workspace: SiftWorkspace | None) -> SiftWorkspace:
    if workspace is None:
        return SiftWorkspace()
    if not isinstance(workspace, SiftWorkspace):
        raise QkdInputError(f"workspace must be a SiftWorkspace, got {type(workspace).__name__}")
    return workspace


def _wrap(o_slot, o_abit, o_bbit, o_int, capacity, counts, detections, pulses) -> SiftResult:
    _finish_counts(counts, detections)
    keys = []
    for b in (BASIS_Z, BASIS_X):
        lo = b * int(capacity)
        hi = lo + int(counts[_N_SIFTED_Z + b])
        keys.append(SiftedKey(o_slot[lo:hi], o_abit[lo:hi], o_bbit[lo:hi], o_int[lo:hi]))
    return SiftResult(
        z=keys[0],
        x=keys[1],
        counts=SiftCounts(
            single=int(counts[CASE_SINGLE]),
            double_same=int(counts[CASE_DOUBLE_SAME]),
            double_cross=int(counts[CASE_DOUBLE_CROSS]),
            multi=int(counts[CASE_MULTI]),
            basis_mismatch=int(counts[CASE_MISMATCH]),
            outside_record=int(counts[CASE_OUTSIDE]),
        ),
        detections=detections.reshape(2, N_INTENSITIES),
        pulses_sent=pulses,
    )


def _checked_pulses(pulses: np.ndarray, alice: AliceRecord) -> np.ndarray:
    out = np.array(pulses, dtype=np.int64)
    if out.shape != (2, N_INTENSITIES) or out.min() < 0 or out.sum() != len(alice):
        raise QkdInputError(
            f"sift: pulses must be int[2, {N_INTENSITIES}] counts summing to the record's "
            f"{len(alice)} slots, got shape {out.shape} summing to {out.sum()}"
        )
    return out


def sift(gated: Gated, alice: AliceRecord, rng: np.random.Generator,
         workspace: SiftWorkspace | None = None, pulses: np.ndarray | None = None) -> SiftResult:
    """Sift gated detections (slot order) against Alice's record.

    Slot s is Alice's entry s - alice.first_slot; clicked slots outside her record
    are counted (outside_record) and dropped.  Multi-click choices are drawn as
    described in the module docstring (one 64-bit draw from rng).  With a
    workspace, the sifted keys are views into its buffers (see SiftWorkspace).
    pulses: `pulses_sent(alice)` when the caller has it already (counted once
    per record); None counts them here.
    """
    slot = np.ascontiguousarray(gated.slot, dtype=np.int64)
    role = np.ascontiguousarray(gated.role, dtype=np.uint8)
    if slot.shape != role.shape or slot.ndim != 1:
        raise QkdInputError(
            f"sift: gated slot and role arrays differ in shape: {slot.shape} vs {role.shape}"
        )
    if slot.size and role.max() > 3:
        raise QkdInputError(f"sift: detector role {int(role.max())} out of range 0..3")
    if slot.size > 1 and np.any(slot[1:] < slot[:-1]):
        raise QkdInputError("sift: gated slots are not in non-decreasing order")
    key = _draw_key(rng)
    bufs = _workspace(workspace).outputs(slot.size)
    state = np.zeros(2, dtype=np.int64)
    record = (alice.basis, alice.bit, alice.intensity, np.int64(alice.first_slot))
    _sift_chunk(slot, role, state, key, *record, *bufs)
    _finish_last(state, key, *record, *bufs)
    return _wrap(*bufs, pulses_sent(alice) if pulses is None else _checked_pulses(pulses, alice))


def gate_and_sift(
    block: TagBlock,
    clock: Clock,
    config: GateConfig,
    alice: AliceRecord,
    rng: np.random.Generator,
    workspace: SiftWorkspace | None = None,
) -> tuple[GateStats, SiftResult]:
    """Gate and sift in one pass over the tags (no per-tag arrays).

    Same result as `sift(gate(block, clock, config), alice, rng)` for the same
    generator state; use `gate` + `sift` when per-tag gate times are needed.
    Works in chunks of GATE_CHUNK tags held in cache: gate (vectorized slot
    arithmetic, then compaction into packed slot * 4 + role), sift the chunk's
    detections, and count Alice's pulses over the record slots the chunk swept
    (while they are in cache).  With a workspace kept across calls, the sifted
    keys are views into it (see SiftWorkspace).  About 2.6 ns of CPU per tag at
    0.31 tags per slot (`qkdctl bench sift`, docs/sift.md).
    """
    args = gate_params(block, clock, config)
    key = _draw_key(rng)
    ws = _workspace(workspace)
    bufs = ws.outputs(len(block))
    gstats = np.zeros(9, dtype=np.int64)
    pulses = np.zeros((2, N_INTENSITIES), dtype=np.int64)
    _gate_sift_kernel(block.t_ps, block.channel, *args, key, alice.basis, alice.bit,
                      alice.intensity, np.int64(alice.first_slot), *bufs, gstats, pulses,
                      *ws.chunk_buffers())
    stats = gate_stats(gstats, config)
    return stats, _wrap(*bufs, pulses)
