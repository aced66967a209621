"""Slow, plain reference of qkdctl.core.polstats (one click at a time)."""

from __future__ import annotations


def click_matrix(slots, roles, a_basis, a_bit, first_slot):
    """counts[prepared 2 * basis + bit][detector role] over clicks inside the record."""
    out = [[0] * 4 for _ in range(4)]
    for s, r in zip(slots, roles):
        i = s - first_slot
        if 0 <= i < len(a_basis):
            out[2 * int(a_basis[i]) + int(a_bit[i])][r] += 1
    return out
