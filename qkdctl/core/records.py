"""Alice's per-slot record: what she sent in every pulse slot."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from qkdctl.core.errors import QkdInputError


@dataclass(frozen=True)
class AliceRecord:
    """Alice's choices per pulse slot (slot index = position in the arrays).

    basis: uint8 (0 = Z, 1 = X); bit: uint8 (0/1); intensity: uint8 class
    (0 signal, 1 decoy, 2 vacuum).  first_slot: slot index of element 0.
    """

    basis: np.ndarray
    bit: np.ndarray
    intensity: np.ndarray
    first_slot: int = 0

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("basis", "bit", "intensity"):
            a = np.ascontiguousarray(getattr(self, name), dtype=np.uint8)
            if a.ndim != 1:
                raise QkdInputError(f"AliceRecord.{name} must be a 1-D array")
            arrays[name] = a
        sizes = {n: a.size for n, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise QkdInputError(f"AliceRecord arrays of mismatched length: {sizes}")
        for name, top in (("basis", 1), ("bit", 1), ("intensity", 2)):
            if arrays[name].size and arrays[name].max() > top:
                raise QkdInputError(
                    f"AliceRecord.{name} holds {int(arrays[name].max())}; allowed 0..{top}"
                )
        for name, a in arrays.items():
            object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return int(self.basis.size)

    @classmethod
    def trusted(
        cls, basis: np.ndarray, bit: np.ndarray, intensity: np.ndarray, first_slot: int = 0
    ) -> "AliceRecord":
        """A record from arrays whose values are in range by construction (0..1, 0..1, 0..2).

        For producers that guarantee the ranges themselves (the simulator's choice kernel
        writes only those values): checks dtype uint8, 1-D, contiguity and equal lengths,
        O(1), but skips the constructor's three passes over the values (~0.08 ns per slot).
        """
        arrays = {"basis": basis, "bit": bit, "intensity": intensity}
        for name, a in arrays.items():
            if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1 or not a.flags.c_contiguous:
                raise QkdInputError(f"AliceRecord.trusted: {name} must be a contiguous 1-D uint8 array")
        sizes = {n: a.size for n, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise QkdInputError(f"AliceRecord arrays of mismatched length: {sizes}")
        out = object.__new__(cls)
        for name, a in arrays.items():
            object.__setattr__(out, name, a)
        object.__setattr__(out, "first_slot", int(first_slot))
        return out

    def renumbered(self, first_slot: int) -> "AliceRecord":
        """The same record (same arrays, not re-validated) with element 0 at slot `first_slot`."""
        out = copy.copy(self)  # no __init__: the arrays were checked when self was made
        object.__setattr__(out, "first_slot", int(first_slot))
        return out
