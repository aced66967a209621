"""Polarization click statistics: prepared state x detector, for compensation tuners."""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import Gated


def click_matrix(gated: Gated, alice: AliceRecord) -> np.ndarray:
    """int64[4, 4]: clicks of detector (H, V, D, A) per prepared state (H, V, D, A).

    Prepared state index = 2 * basis + bit (Z0 = H, Z1 = V, X0 = D, X1 = A).
    Every gated click counts, multi-click slots included; clicks in slots outside
    Alice's record are skipped.
    """
    slot = np.asarray(gated.slot, dtype=np.int64)
    role = np.asarray(gated.role, dtype=np.int64)
    if slot.shape != role.shape:
        raise QkdInputError("click_matrix: gated slot and role arrays differ in shape")
    idx = slot - alice.first_slot
    inside = (idx >= 0) & (idx < len(alice))
    idx, role = idx[inside], role[inside]
    state = 2 * alice.basis[idx].astype(np.int64) + alice.bit[idx]
    return np.bincount(state * 4 + role, minlength=16).reshape(4, 4)
