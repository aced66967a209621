"""Cascade variants as data: one frozen record per variant, read by the Cascade engine.

Block size of pass i (1-based) for estimated QBER q and key length n:
  k1 = ceil(k1_factor / q), or 2**ceil(log2(k1_factor / q)) when `k1_pow2`;
  k2 = k2_factor * k1;  k_i (i >= 3) = 2 k_{i-1} when `later == "double"`, n // 2 when
  `later == "half"`.  Block sizes are clipped to [1, n].
After the Cascade passes, `biconf_streak > 0` runs BICONF rounds (a random half of the key,
one parity, a binary search when it differs) until that many rounds in a row agree.
`block_reuse`: every sub-block whose parity became known in a binary search takes part in
the cascade effect (otherwise only top-level blocks do).
`infer_last_block`: from pass 2 on, the parity of the last block is not asked but inferred
from the parity of the whole key, known from pass 1 (block parity inference): one parity
bit less per pass.
`wave_divisor`: from pass 2 on, binary searches start in waves of ceil(w / wave_divisor)
of the w odd blocks still waiting, the next wave once the current one and its cascade
have settled; the cascade effect of a wave evens some waiting blocks, whose searches are
then saved (about 1 % of f at n = 1e4) at the price of more round trips.  1 = all odd
blocks of a pass at once (lockstep, fewest round trips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qkdctl.core.errors import QkdInputError


@dataclass(frozen=True)
class CascadeVariant:
    """The knobs of one Cascade variant (see module docstring)."""

    name: str
    passes: int
    k1_factor: float
    k1_pow2: bool = False
    k2_factor: float = 2.0
    later: str = "double"
    biconf_streak: int = 0
    block_reuse: bool = False
    infer_last_block: bool = False
    wave_divisor: int = 1

    def block_sizes(self, qber_estimate: float, n: int) -> list[int]:
        """Block size of each Cascade pass (bits) for estimated QBER and key length n."""
        if not 0.0 < qber_estimate < 0.5:
            raise QkdInputError(f"qber_estimate must be in (0, 0.5), got {qber_estimate}")
        if n < 2:
            raise QkdInputError(f"key length must be >= 2 bits, got {n}")
        if self.k1_pow2:
            k1 = 2 ** math.ceil(math.log2(self.k1_factor / qber_estimate))
        else:
            k1 = math.ceil(self.k1_factor / qber_estimate)
        sizes = [k1]
        for i in range(1, self.passes):
            if i == 1:
                sizes.append(int(round(self.k2_factor * k1)))
            elif self.later == "double":
                sizes.append(2 * sizes[-1])
            else:
                sizes.append(n // 2)
        return [max(1, min(n, k)) for k in sizes]


# Brassard & Salvail, EUROCRYPT '93: 4 passes, k1 = 0.73/Q, doubling.
ORIGINAL = CascadeVariant("original", passes=4, k1_factor=0.73)
# Martinez-Mateo et al. QIC 15 (2015) "Cascade mod. (1)": 2 passes (k1 = 0.92/Q, k2 = 3 k1)
# followed by BICONF rounds until 10 agree in a row.
BICONF = CascadeVariant("biconf", passes=2, k1_factor=0.92, k2_factor=3.0, biconf_streak=10)
# Yan et al. block sizes = "Cascade opt. (2)" of Martinez-Mateo et al.: 10 passes,
# k1 = 0.8/Q, k2 = 5 k1, then n/2.
YANETAL = CascadeVariant("yanetal", passes=10, k1_factor=0.80, k2_factor=5.0, later="half")
# "Cascade opt. (3)": 16 passes, k1 = 1/Q, k2 = 2 k1, then n/2.
OPTION3 = CascadeVariant("option3", passes=16, k1_factor=1.0, later="half")
# "Cascade opt. (4)": opt. (3) plus block reuse in the cascade effect.
OPTION4 = CascadeVariant("option4", passes=16, k1_factor=1.0, later="half", block_reuse=True)
# "Cascade opt. (7)": 14 passes, k1 = 2^ceil(log2(1/Q)), k2 = 4 k1, then n/2, block reuse.
OPTION7 = CascadeVariant("option7", passes=14, k1_factor=1.0, k1_pow2=True, k2_factor=4.0,
                         later="half", block_reuse=True)

# This project (docs/reconciliation.md): opt. (7)-like with k1 = ceil(1.2/Q), k2 = 2 k1
# (fewer error pairs survive pass 2: their number, ~Q^2 k1 k2 / 2, does not shrink with n,
# and each costs a ~log2(n/2) search in an n/2 pass, the main excess at n = 1e4), block
# parity inference (one parity less per pass) and searches in waves of half the waiting
# odd blocks (the cascade effect of one wave evens blocks of the next).
TUNED = CascadeVariant("tuned", passes=14, k1_factor=1.2, k2_factor=2.0, later="half",
                       block_reuse=True, infer_last_block=True, wave_divisor=2)

# This project (docs/reconciliation.md), best f at n = 1e4: two Cascade passes
# (k1 = ceil(1.3/Q), k2 = 2.1 k1, block reuse, block parity inference, waves of an eighth
# of the waiting odd blocks), then BICONF rounds until 12 agree in a row instead of twelve
# fixed n/2 passes: a frame the two passes left clean pays 12 bits and no more.  A random
# half's parity misses the remaining errors with probability 1/2, so each run of agreeing
# rounds that starts while errors remain ends the frame wrongly with probability 2^-12;
# with ~1-3 such runs per frame FER ~ 2.5e-4..7e-4 (11 rounds measured ~1e-3: too many).
EFFICIENT = CascadeVariant("efficient", passes=2, k1_factor=1.3, k2_factor=2.1,
                           biconf_streak=12, block_reuse=True, infer_last_block=True,
                           wave_divisor=8)

VARIANTS: dict[str, CascadeVariant] = {
    v.name: v for v in (ORIGINAL, BICONF, YANETAL, OPTION3, OPTION4, OPTION7, TUNED, EFFICIENT)
}
