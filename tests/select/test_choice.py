from dataclasses import replace

import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.select.choice import propose_choice
from qkdctl.tune.decoy import DecoyChoice, LinkFigures, ProtocolConstants, finite_key_rate
from tests.tune.test_decoy import report_for

HELD = DecoyChoice((0.47, 0.17, 0.0), (0.1, 0.5, 0.4), 0.7)
C = ProtocolConstants()


def _link(block_size: float) -> LinkFigures:
    return LinkFigures(loss_db=27.0, misalignment=0.0055, dark_count_prob=3e-8, afterpulse_prob=0.003,
                       block_size=block_size)


def test_proposal_beats_the_settings_in_force_and_says_by_how_much():
    fig = _link(1e5)
    prop = propose_choice(report_for(fig, HELD), HELD, fig.afterpulse_prob, fig.block_size, C)
    assert prop.figures.loss_db == pytest.approx(fig.loss_db, abs=0.05)
    assert prop.rate_held_per_pulse == pytest.approx(finite_key_rate(prop.figures, HELD, C))
    assert prop.rate_per_pulse > prop.rate_held_per_pulse
    assert prop.rate_per_pulse == pytest.approx(finite_key_rate(prop.figures, prop.choice, C))
    assert prop.choice.mu[2] == HELD.mu[2]  # the vacuum class stays the vacuum


def test_intensities_only_hold_the_probabilities():
    fig = _link(1e5)
    prop = propose_choice(report_for(fig, HELD), HELD, fig.afterpulse_prob, fig.block_size, C,
                          probabilities=False)
    assert prop.choice.p_mu == HELD.p_mu and prop.choice.key_basis_prob == HELD.key_basis_prob
    full = propose_choice(report_for(fig, HELD), HELD, fig.afterpulse_prob, fig.block_size, C)
    assert full.rate_per_pulse >= prop.rate_per_pulse


def test_key_basis_optimum_moves_with_block_size():
    p_z = []
    for n in (1e4, 1e6):
        fig = _link(n)
        p_z.append(propose_choice(report_for(fig, HELD), HELD, fig.afterpulse_prob, n, C).choice.key_basis_prob)
    assert p_z[0] + 0.05 < p_z[1]  # small blocks need more test-basis events


def test_refuses_a_block_that_did_not_verify():
    rep = replace(report_for(_link(1e5), HELD), status="aborted", abort_reason="verification failed")
    with pytest.raises(QkdInputError, match="did not verify"):
        propose_choice(rep, HELD, 0.003, 1e5, C)
