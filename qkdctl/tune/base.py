"""The one interface every tuner implements, classical or quantum.

Operating parameters are a flat mapping of names to floats, the same names the
engine applies through the drivers and records per block:

  pol.1 .. pol.N     polarization controller settings (controller units: deg or mV)
  voa.1 .. voa.3     attenuation (dB) of the signal, decoy, vacuum intensity channels
  gate.offset_ps     detection gate centre relative to the recovered clock (ps)
  gate.width_ps      detection gate width (ps)
  alice.p_z, alice.p_signal, alice.p_decoy   Alice's P(Z) and intensity probabilities
                     (vacuum = the rest; when her host takes them, qkdctl.hardware)

A tuner reads the history of BlockReports (newest last) and the parameters in
force, may spend probe measurements up to a per-block budget (its own
`probe_budget`; the engine also caps all tuners of a block together with
[tuner].probe_budget, and a probe asked beyond it raises `ProbeBudgetError`),
and returns a `Proposal` (new values for some parameters, with a reason) or
None to keep everything.  The engine applies the proposal before the next acquisition and
records it.  Tuners never touch drivers or backends directly: what they need
(the controller's calibration, a quantum backend) is injected by the caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError

# probe(params, duration_s) -> BlockReport measured with `params` in force (duration
# capped by [tuner].max_probe_s; QBER, gains and click matrix only, never key).
Probe = Callable[[Mapping[str, float], float], BlockReport]


class ProbeBudgetError(QkdInputError):
    """A tuner asked for a probe beyond the block's probe budget (the probe is refused)."""


@dataclass(frozen=True)
class Proposal:
    """New values for some operating parameters, why, and what it cost.

    probes_used: probe measurements spent; circuits/shots: quantum work submitted.
    """

    params: Mapping[str, float]
    reason: str
    probes_used: int = 0
    extra: Mapping[str, object] = field(default_factory=dict)


class Tuner(ABC):
    """Propose operating parameters for the next block from the block history."""

    name: str = "tuner"
    probe_budget: int = 0

    def start_run(self, db, run_id: str) -> None:
        """Called by the engine as a run starts, with its RunDB (for tuners that record there)."""

    @abstractmethod
    def propose(
        self,
        history: Sequence[BlockReport],
        params: Mapping[str, float],
        probe: Probe | None = None,
    ) -> Proposal | None:
        """Return new parameters (or None to keep the ones in force)."""
