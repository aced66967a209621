"""Per-detection features of sifted events, for selection and for learning error models.

For every sifted event (a clicked slot whose bases agree) of one basis:
- dt_ps: time of the slot's first gated click from the gate centre (ps);
- since_any_slots: slots since the previous clicked slot on any detector (afterpulsing,
  dead time); NO_PREVIOUS_SLOTS when none in the block;
- position: place of the slot in the block, (slot - first) / span in [0, 1] (drift);
- detector: role 0..3 of the first click; n_clicks: clicks in the slot;
- since_same_slots: slots since the previous click on that same detector;
- intensity, basis: Alice's class and the basis.

Only the columns in PUBLIC_COLUMNS may drive a selection: they are symmetric in the
bit, the basis and the intensity (docs/selection.md explains why detector,
n_clicks, since_same_slots, intensity and basis may not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from qkdctl.core.constants import BASIS_X, BASIS_Z
from qkdctl.core.errors import QkdInputError
from qkdctl.core.sift import SiftedKey, SiftResult
from qkdctl.core.tags import Gated

NO_PREVIOUS_SLOTS = 1 << 40
"""since_*_slots of a slot with no earlier click in the block."""
PUBLIC_COLUMNS = ("dt_ps", "since_any_slots", "position")
GAP_CAP_SLOTS = 100_000
"""since_any_slots is capped here in the model inputs (longer gaps look alike)."""


@dataclass(frozen=True)
class EventFeatures:
    """Feature columns of the sifted events of one basis (same order as the SiftedKey)."""

    basis: int
    dt_ps: np.ndarray
    since_any_slots: np.ndarray
    position: np.ndarray
    detector: np.ndarray
    n_clicks: np.ndarray
    since_same_slots: np.ndarray
    intensity: np.ndarray

    def __len__(self) -> int:
        return int(self.dt_ps.size)

    def public_matrix(self) -> np.ndarray:
        """float64[n, 3] of PUBLIC_COLUMNS (since_any as log10 of the gap capped at GAP_CAP_SLOTS)."""
        return np.column_stack([
            self.dt_ps.astype(np.float64),
            np.log10(np.minimum(self.since_any_slots, GAP_CAP_SLOTS).astype(np.float64)),
            self.position,
        ])


@njit(cache=True)
def _slot_features_kernel(slot, role, dt, u_slot, u_dt, u_role, u_n, u_any, u_same):
    """Per distinct clicked slot (slot sorted): first dt, first role, clicks, gaps; return count."""
    last_role = np.full(4, -1, dtype=np.int64)
    last_slot = np.int64(-1)
    have_last = False
    k = -1
    for i in range(slot.size):
        s = slot[i]
        r = role[i]
        if k < 0 or s != u_slot[k]:
            k += 1
            u_slot[k] = s
            u_dt[k] = dt[i]
            u_role[k] = r
            u_n[k] = 0
            u_any[k] = s - last_slot if have_last else np.int64(1) << 40
            u_same[k] = s - last_role[r] if last_role[r] >= 0 else np.int64(1) << 40
            have_last = True
            last_slot = s
        u_n[k] += 1
        last_role[r] = s
    return k + 1


def _per_slot(gated: Gated) -> tuple[np.ndarray, ...]:
    n = len(gated)
    out = (np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.uint8),
           np.empty(n, np.uint8), np.empty(n, np.int64), np.empty(n, np.int64))
    k = _slot_features_kernel(np.ascontiguousarray(gated.slot, dtype=np.int64),
                              np.ascontiguousarray(gated.role, dtype=np.uint8),
                              np.ascontiguousarray(gated.dt_ps, dtype=np.float32), *out)
    return tuple(a[:k] for a in out)


def _basis_features(per_slot: tuple[np.ndarray, ...], key: SiftedKey, basis: int,
                    first: int, span: int) -> EventFeatures:
    u_slot, u_dt, u_role, u_n, u_any, u_same = per_slot
    idx = np.searchsorted(u_slot, key.slot)
    if key.slot.size and (idx.max() >= u_slot.size or np.any(u_slot[idx] != key.slot)):
        raise QkdInputError("event features: a sifted slot has no gated click (gated and sifted differ)")
    return EventFeatures(
        basis=basis,
        dt_ps=u_dt[idx].astype(np.float64),
        since_any_slots=u_any[idx],
        position=(key.slot - first) / span,
        detector=u_role[idx],
        n_clicks=u_n[idx],
        since_same_slots=u_same[idx],
        intensity=key.intensity,
    )


def event_features(gated: Gated, sifted: SiftResult) -> tuple[EventFeatures, EventFeatures]:
    """(Z, X) features of the sifted events, from the gated clicks they were sifted from."""
    if len(gated) > 1 and np.any(np.diff(gated.slot) < 0):
        raise QkdInputError("event features: gated slots are not in non-decreasing order")
    per_slot = _per_slot(gated)
    first = int(per_slot[0][0]) if per_slot[0].size else 0
    span = max(int(per_slot[0][-1]) - first, 1) if per_slot[0].size else 1
    return (_basis_features(per_slot, sifted.z, BASIS_Z, first, span),
            _basis_features(per_slot, sifted.x, BASIS_X, first, span))
