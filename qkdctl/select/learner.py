"""The run's selector, refitted on past verified blocks on a schedule.

The engine asks `selector()` before a block is processed and hands the block's
labelled events to `observe()` after it verified (key-basis errors are known to
both parties once reconciliation and verification are done; test-basis errors
were disclosed).  Every `refit_every_blocks` observed blocks the selector is
refitted on the last `history_blocks` of them.  A block is therefore always
selected by a selector fitted on earlier blocks only: `selector()` for a block is
read before its own labels exist, and `record()` names the blocks it was fitted on.

Before the first fit the selector is None: the pipeline keeps every gated event
(today's configured window).  Labels exist only for the events that were kept
(the discarded key-basis events are never reconciled), so a later fit sees the
events the current selector kept; it may narrow the selection or relax its
threshold within them, not recover events it never saw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.tags import GateConfig
from qkdctl.select.objective import LabelledBlock
from qkdctl.select.selectors import Selector, SklearnErrorModel, fit_model_selector, fit_window

LEARNED_KINDS = ("optimized_window", "logistic", "gradient_boosting")


@dataclass(frozen=True)
class RefitSchedule:
    """kind: one of LEARNED_KINDS; refit_every_blocks: verified blocks between fits;
    history_blocks: past verified blocks a fit uses (the newest ones); f_ec: leak model
    f_EC n h(Q) of the objective."""

    kind: str
    refit_every_blocks: int = 5
    history_blocks: int = 4
    f_ec: float = 1.16

    def __post_init__(self) -> None:
        if self.kind not in LEARNED_KINDS:
            raise QkdInputError(f"selection kind {self.kind!r} unknown; known: {', '.join(LEARNED_KINDS)}")
        if self.refit_every_blocks < 1 or self.history_blocks < 1:
            raise QkdInputError(f"refit_every_blocks ({self.refit_every_blocks}) and history_blocks "
                                f"({self.history_blocks}) must be >= 1")
        if not self.f_ec >= 1.0:
            raise QkdInputError(f"selection f_ec must be >= 1, got {self.f_ec}")


class SelectionLearner:
    """Holds the selector in force and the labelled past blocks it is refitted on."""

    def __init__(self, schedule: RefitSchedule, gate: GateConfig, seed: int = 0) -> None:
        self.schedule = schedule
        self.gate = gate
        self.seed = int(seed)
        self._past: deque[tuple[int, LabelledBlock]] = deque(maxlen=schedule.history_blocks)
        self._since_fit = 0
        self._selector: Selector | None = None
        self._fit: dict = {}
        self.fits = 0

    def selector(self) -> Selector | None:
        """The selector for the next block (None: keep every gated event)."""
        return self._selector

    def record(self) -> dict:
        """What the selector in force was fitted on (for the BlockReport / run DB)."""
        return dict(self._fit)

    def observe(self, block_id: int, labelled: LabelledBlock, settings: DecoySettings) -> bool:
        """Add a verified block's labelled events; refit when the schedule says so.

        settings: the decoy settings of that block (the fit's objective uses those of
        the newest block).  Returns True when a new selector was fitted.
        """
        if self._past and block_id <= self._past[-1][0]:
            raise QkdInputError(f"selection learner: block {block_id} observed after block {self._past[-1][0]}")
        self._past.append((int(block_id), labelled))
        self._since_fit += 1
        if self._since_fit < self.schedule.refit_every_blocks:
            return False
        ids = [b for b, _ in self._past]
        blocks = [lb for _, lb in self._past]
        try:
            sel = self._fit_on(blocks, settings)
        except QkdInputError as exc:  # e.g. no errors at all in the history: keep the selector in force
            self._fit = {**self._fit, "last_refit_failed": str(exc), "failed_after_block": int(block_id)}
            self._since_fit = 0
            return False
        self._selector = sel
        self._since_fit = 0
        self.fits += 1
        self._fit = {"kind": self.schedule.kind, "fit": self.fits, "fitted_after_block": int(block_id),
                     "trained_on_blocks": ids,
                     "trained_on_events": int(sum(len(b.z) + len(b.x) for b in blocks))}
        return True

    def _fit_on(self, blocks: list[LabelledBlock], settings: DecoySettings) -> Selector:
        kind, f_ec = self.schedule.kind, self.schedule.f_ec
        if kind == "optimized_window":
            return fit_window(blocks, settings, f_ec, self.gate)
        return fit_model_selector(kind, SklearnErrorModel(kind, self.seed), blocks, settings, f_ec)

