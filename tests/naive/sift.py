"""Slow, plain references for gating and sifting (tests compare the kernels to these)."""

from __future__ import annotations

import math

MASK64 = (1 << 64) - 1


def splitmix64(key: int, position: int) -> int:
    """Output number `position` of SplitMix64 seeded with `key` (Python ints)."""
    z = (key + (position + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def gate(t_ps, channel, roles, ignore, phase_ps, period_ps, offset_ps, width_ps):
    """(slots, roles, dt_ps, rejected, ignored, unknown_channels) tag by tag."""
    ref = phase_ps + offset_ps
    inv = 1.0 / period_ps
    slots, kept_roles, dts, unknown = [], [], [], []
    rejected = ignored = 0
    for t, c in zip(t_ps.tolist(), channel.tolist()):
        if c in ignore:
            ignored += 1
            continue
        if c not in roles:
            unknown.append(c)
            continue
        y = float(t) - ref
        s = math.floor(y * inv + 0.5)
        d = y - s * period_ps
        if -width_ps / 2 <= d <= width_ps / 2:
            slots.append(s)
            kept_roles.append(roles[c])
            dts.append(d)
        else:
            rejected += 1
    return slots, kept_roles, dts, rejected, ignored, unknown


def sift(slots, roles, a_basis, a_bit, a_int, first_slot, key):
    """Sift detections slot by slot.

    Returns (sifted, counts, detections): sifted[b] is a list of (slot, alice bit,
    bob bit, intensity); counts a dict of case counts; detections[b][k].
    """
    clicks: dict[int, set[int]] = {}
    for s, r in zip(slots, roles):
        clicks.setdefault(s, set()).add(r)
    sifted = {0: [], 1: []}
    counts = dict(single=0, double_same=0, double_cross=0, multi=0,
                  basis_mismatch=0, outside_record=0)
    detections = [[0, 0, 0], [0, 0, 0]]
    for s in sorted(clicks):
        i = s - first_slot
        if not 0 <= i < len(a_basis):
            counts["outside_record"] += 1
            continue
        dets = clicks[s]
        z = dets & {0, 1}
        x = dets & {2, 3}
        r = splitmix64(key, s)
        random_basis, random_bit = r >> 63, (r >> 62) & 1
        if z and x:
            counts["multi" if len(dets) > 2 else "double_cross"] += 1
            basis, bit = random_basis, random_bit
        else:
            basis = 0 if z else 1
            if len(dets) == 2:
                counts["double_same"] += 1
                bit = random_bit
            else:
                counts["single"] += 1
                bit = min(dets) % 2
        detections[int(a_basis[i])][int(a_int[i])] += 1
        if basis != a_basis[i]:
            counts["basis_mismatch"] += 1
            continue
        sifted[basis].append((s, int(a_bit[i]), bit, int(a_int[i])))
    return sifted, counts, detections


def pulses_sent(a_basis, a_int):
    """pulses[b][k] counted one slot at a time."""
    out = [[0, 0, 0], [0, 0, 0]]
    for b, k in zip(a_basis.tolist(), a_int.tolist()):
        out[b][k] += 1
    return out
