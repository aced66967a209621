"""The selection objective: finite-key length of the kept events of labelled past blocks.

A labelled block holds the sifted events of both bases with their error labels,
known to both parties after the block was reconciled and verified (key basis) or
disclosed (test basis).  The key length of a selection is Lim et al.'s bound
(qkdctl.core.keyrate) on the kept counts per intensity, with the reconciliation
leak modelled as f_ec * n * h(QBER) of the kept key-basis events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qkdctl.core.constants import N_INTENSITIES
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings, DecoyStats, binary_entropy, key_length
from qkdctl.select.features import EventFeatures


@dataclass(frozen=True)
class LabelledBlock:
    """Features and error flags (Alice's bit != Bob's bit) of one past block, per basis."""

    z: EventFeatures
    x: EventFeatures
    wrong_z: np.ndarray
    wrong_x: np.ndarray

    def __post_init__(self) -> None:
        if self.wrong_z.shape != (len(self.z),) or self.wrong_x.shape != (len(self.x),):
            raise QkdInputError(
                f"LabelledBlock: error flags ({self.wrong_z.size}, {self.wrong_x.size}) do not match "
                f"the events ({len(self.z)}, {len(self.x)})"
            )


def decoy_stats(block: LabelledBlock, keep_z: np.ndarray, keep_x: np.ndarray,
                leak_ec_bits: float) -> DecoyStats:
    """Kept counts and errors per intensity of both bases (Z = key, X = test)."""
    def per_int(f: EventFeatures, mask: np.ndarray) -> np.ndarray:
        return np.bincount(f.intensity[mask], minlength=N_INTENSITIES)

    return DecoyStats(
        n_key=tuple(per_int(block.z, keep_z)), m_key=tuple(per_int(block.z, keep_z & block.wrong_z)),
        n_test=tuple(per_int(block.x, keep_x)), m_test=tuple(per_int(block.x, keep_x & block.wrong_x)),
        leak_ec_bits=leak_ec_bits,
    )


def selection_length_bits(block: LabelledBlock, keep_z: np.ndarray, keep_x: np.ndarray,
                          settings: DecoySettings, f_ec: float) -> float:
    """Finite-key length (bits, may be negative) of the kept events; leak = f_ec n h(q)."""
    n = int(keep_z.sum())
    if n == 0 or not keep_x.any():
        return float("-inf")
    q = float((keep_z & block.wrong_z).sum()) / n
    stats = decoy_stats(block, keep_z, keep_x, f_ec * n * binary_entropy(q))
    kl = key_length(stats, settings)
    if any("inconsistent" in flag for flag in kl.flags):
        return float("-inf")
    if kl.key_length_bits == 0:  # blocked by a flag or not positive
        return min(kl.length_bits, 0.0)
    return kl.length_bits


def total_length_bits(blocks: list[LabelledBlock], keep, settings: DecoySettings, f_ec: float) -> float:
    """Sum over blocks of max(length, 0) (bits), keep(features) -> bool mask for either basis."""
    return math.fsum(max(selection_length_bits(b, keep(b.z), keep(b.x), settings, f_ec), 0.0)
                     for b in blocks)

def labelled_block(gated, sifted) -> LabelledBlock:
    """LabelledBlock of a processed block (gated clicks and its sifted events, both bases).

    The error flags compare Alice's and Bob's bits: after a verified reconciliation
    (key basis) and the disclosure (test basis) both parties know them.
    """
    from qkdctl.select.features import event_features

    fz, fx = event_features(gated, sifted)
    return LabelledBlock(fz, fx, sifted.z.alice_bit != sifted.z.bob_bit,
                         sifted.x.alice_bit != sifted.x.bob_bit)
