"""Link-adapted decoy settings: intensities, their probabilities and Alice's P(Z).

`LinkAdaptedTuner` ("link-adapted" in [tuner]) measures the link from the newest
verified block (`qkdctl.select.choice.propose_choice`: loss, dark counts and
misalignment from the block's public figures, with the settings that were in
force for that block) and asks the decoy optimizer of the tuning capability for
the settings with the most finite-key bits per pulse.  It moves only when the
predicted gain over the settings in force is at least `min_relative_gain`.  It
sets voa.1, voa.2 (dB) and alice.p_z, alice.p_signal, alice.p_decoy (vacuum takes
the rest); Bob's basis splitter is a fixed component and is not touched.  The
engine uses, for each block, the probabilities in force when it was acquired.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.hardware import choice_params, choice_probabilities
from qkdctl.select.choice import propose_choice
from qkdctl.tune.base import Probe, Proposal, Tuner
from qkdctl.tune.decoy import DecoyChoice, ProtocolConstants, attenuation_params, intensities_from_params


class LinkAdaptedTuner(Tuner):
    """Propose mu1, mu2, p_mu and P(Z) for the link measured by the newest verified block.

    mu_at_0db: the source's photons/pulse at 0 dB; afterpulse_prob: extra click per
    click landing in a gate (per slot); block_size: key-basis detections per block
    (None: the block's own sifted Z bits); min_relative_gain: smallest predicted
    relative gain in bits/pulse worth a move; ec_efficiency, eps_sec, eps_cor: the
    protocol's (for the predicted rate).
    """

    name = "link-adapted"

    def __init__(self, mu_at_0db: float = 1.0, afterpulse_prob: float = 0.0, block_size: float | None = None,
                 min_relative_gain: float = 0.03, ec_efficiency: float = 1.16, eps_sec: float = 1e-10,
                 eps_cor: float = 1e-15) -> None:
        if not mu_at_0db > 0:
            raise QkdInputError(f"mu_at_0db must be > 0 photons/pulse, got {mu_at_0db}")
        if not 0.0 <= min_relative_gain < 10.0:
            raise QkdInputError(f"min_relative_gain must lie in [0, 10), got {min_relative_gain}")
        if block_size is not None and not block_size >= 1e3:
            raise QkdInputError(f"block_size must be >= 1e3 key-basis detections, got {block_size}")
        self.mu_at_0db = float(mu_at_0db)
        self.afterpulse_prob = float(afterpulse_prob)
        self.block_size = None if block_size is None else float(block_size)
        self.min_relative_gain = float(min_relative_gain)
        self.constants = ProtocolConstants(ec_efficiency=ec_efficiency, eps_sec=eps_sec, eps_cor=eps_cor,
                                           mu_max=self.mu_at_0db)

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        """New voa.1, voa.2, alice.p_* (None: no verified block yet, or the gain is too small)."""
        ok = [r for r in history if r.status == "ok"]
        if not ok:
            return None
        rep = ok[-1]
        in_force = rep.params or params  # the settings that block was acquired with
        choice = choice_probabilities(in_force)
        if choice is None:
            raise QkdInputError("link-adapted: the bench has no alice.p_* parameters (Alice's host cannot "
                                "set choice probabilities); use decoy-direct for the intensities alone")
        held = DecoyChoice(intensities_from_params(in_force, self.mu_at_0db), choice[1], choice[0])
        block_size = self.block_size or float(rep.sifted_bits_z)
        prop = propose_choice(rep, held, self.afterpulse_prob, block_size, self.constants)
        gain = prop.rate_per_pulse - prop.rate_held_per_pulse
        if gain <= self.min_relative_gain * abs(prop.rate_held_per_pulse) or gain <= 0:
            return None
        new = prop.choice
        moved = {**attenuation_params(new.mu[0], new.mu[1], self.mu_at_0db),
                 **choice_params(new.key_basis_prob, new.p_mu)}
        return Proposal(moved, (
            f"link {prop.figures.loss_db:.1f} dB, misalignment {prop.figures.misalignment:.4f}, "
            f"{block_size:.3g} Z detections/block (block {rep.block_id}): mu {new.mu[0]:.3f}/{new.mu[1]:.3f}, "
            f"p_mu {new.p_mu[0]:.3f}/{new.p_mu[1]:.3f}/{new.p_mu[2]:.3f}, P(Z) {new.key_basis_prob:.3f}; "
            f"predicted {prop.rate_per_pulse:.3e} vs {prop.rate_held_per_pulse:.3e} bits/pulse held"),
            extra={"held": held.as_dict(), "choice": new.as_dict(), "figures": prop.figures.features().tolist(),
                   "rate_per_pulse": prop.rate_per_pulse, "rate_held_per_pulse": prop.rate_held_per_pulse})
