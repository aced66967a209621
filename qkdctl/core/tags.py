"""Time-tag blocks, clock recovery and gating into pulse slots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qkdctl.core.errors import QkdInputError


@dataclass(frozen=True)
class TagBlock:
    """One block of time tags from a tagger.

    t_ps: int64 picoseconds, non-decreasing.  channel: int32 tagger channel.
    start_ps/stop_ps: acquisition window of the block (ps).  overflow: True when
    the tagger reported an overflow (tags were lost) inside the block.
    missed_events: number of tags the tagger reports as lost.
    """

    t_ps: np.ndarray
    channel: np.ndarray
    start_ps: int = 0
    stop_ps: int = 0
    overflow: bool = False
    missed_events: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.ascontiguousarray(self.t_ps, dtype=np.int64)
        ch = np.ascontiguousarray(self.channel, dtype=np.int32)
        if t.ndim != 1 or ch.ndim != 1:
            raise QkdInputError("TagBlock: t_ps and channel must be 1-D arrays")
        if t.shape != ch.shape:
            raise QkdInputError(
                f"TagBlock: t_ps has {t.size} tags but channel has {ch.size}"
            )
        if t.size > 1 and np.any(np.diff(t) < 0):
            first = int(np.argmax(np.diff(t) < 0))
            raise QkdInputError(
                f"TagBlock: timestamps out of order at index {first + 1} "
                f"({t[first + 1]} ps after {t[first]} ps)"
            )
        object.__setattr__(self, "t_ps", t)
        object.__setattr__(self, "channel", ch)

    def __len__(self) -> int:
        return int(self.t_ps.size)
