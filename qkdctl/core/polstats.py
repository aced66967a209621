"""Polarization click statistics: prepared state x detector, for compensation tuners."""

from __future__ import annotations

import numpy as np
from numba import njit

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import Gated


@njit(cache=True)
def _click_matrix_kernel(slot, role, basis, bit, first_slot, out):
    n = np.uint64(basis.size)
    for i in range(slot.size):
        idx = np.uint64(slot[i] - first_slot)  # unsigned: slots before the record are skipped too
        if idx < n:
            out[2 * np.int64(basis[idx]) + np.int64(bit[idx]), role[i]] += 1


def click_matrix(gated: Gated, alice: AliceRecord) -> np.ndarray:
    """int64[4, 4]: clicks of detector (H, V, D, A) per prepared state (H, V, D, A).

    Prepared state index = 2 * basis + bit (Z0 = H, Z1 = V, X0 = D, X1 = A).
    Every gated click counts, multi-click slots included; clicks in slots outside
    Alice's record are skipped.  One pass over the clicks (numba).
    """
    slot = np.ascontiguousarray(gated.slot, dtype=np.int64)
    role = np.ascontiguousarray(gated.role, dtype=np.uint8)
    if slot.shape != role.shape or slot.ndim != 1:
        raise QkdInputError("click_matrix: gated slot and role arrays differ in shape")
    if role.size and role.max() > 3:
        raise QkdInputError(f"click_matrix: detector role {int(role.max())} out of range 0..3")
    out = np.zeros((4, 4), dtype=np.int64)
    _click_matrix_kernel(slot, role, alice.basis, alice.bit, np.int64(alice.first_slot), out)
    return out
