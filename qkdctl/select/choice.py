"""Alice's choice probabilities (basis, intensity class) adapted to the link as measured.

The asymmetric-basis optimum moves with loss and block size (a small block needs
more test-basis events for the phase-error estimate).  `propose_choice` measures
the link from one block's public figures (`qkdctl.tune.decoy.link_from_report`)
and asks the decoy optimizer of the tuning capability for the settings with the
most secret bits per pulse, either the intensities alone (what the VOA can set,
probabilities held) or intensities, their probabilities and P(Z) together.
The proposal only takes effect for blocks acquired after it; the key length of a
block always uses the settings that were in force for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.tune.decoy import (DecoyChoice, LinkFigures, ProtocolConstants, finite_key_rate, link_from_report,
                               optimize_decoy)


@dataclass(frozen=True)
class ChoiceProposal:
    """Proposed settings, the link figures they were optimized for, predicted bits/pulse
    with the settings in force and with the proposal."""

    choice: DecoyChoice
    figures: LinkFigures
    rate_held_per_pulse: float
    rate_per_pulse: float


def propose_choice(report: BlockReport, held: DecoyChoice, afterpulse_prob: float, block_size: float,
                   constants: ProtocolConstants, probabilities: bool = True) -> ChoiceProposal:
    """Settings maximizing the finite-key bits per pulse on the link measured by `report`.

    held: settings in force for that block; afterpulse_prob: extra click per click
    landing in a gate (per slot); block_size: key-basis detections per block (Lim's
    n); probabilities: also choose p_mu and P(Z) (else only mu1, mu2).
    """
    if report.status != "ok":
        raise QkdInputError(f"propose_choice: block {report.block_id} did not verify ({report.abort_reason})")
    constants = replace(constants, mu3=held.mu[2])
    figures = link_from_report(report, held, afterpulse_prob, block_size)
    settable = optimize_decoy(figures, constants, fixed=held, start=held)
    best = optimize_decoy(figures, constants, start=settable.choice) if probabilities else settable
    held_rate = finite_key_rate(figures, held, constants)
    return ChoiceProposal(best.choice, figures, held_rate, best.rate_per_pulse)
