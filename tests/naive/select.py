"""Slow, plain reference of the per-slot features of qkdctl.select.features."""

from __future__ import annotations

NONE = 1 << 40


def slot_features(slots, roles, dts):
    """Per distinct slot (in order): (slot, first dt, first role, clicks, since any, since same)."""
    out = []
    last_any = None
    last_role = {}
    for s, r, d in zip(list(slots), list(roles), list(dts)):
        if out and out[-1][0] == s:
            out[-1][3] += 1
        else:
            since_any = s - last_any if last_any is not None else NONE
            since_same = s - last_role[r] if r in last_role else NONE
            out.append([s, d, r, 1, since_any, since_same])
            last_any = s
        last_role[r] = s
    return [tuple(o) for o in out]
