"""Decoy-state optimizer, link estimation from a block report, decoy tuners and the learned predictor."""

import math
from dataclasses import replace

import numpy as np
import pytest

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.core.keyrate import DecoySettings, key_length
from qkdctl.tune import make_tuner
from qkdctl.tune.decoy import (
    DecoyChoice,
    LinkFigures,
    ProtocolConstants,
    _any_click,
    _qber_key,
    attenuation_params,
    finite_key_rate,
    link_from_report,
    optimize_decoy,
)
from qkdctl.tune.decoy_predictor import DecoyPredictor, encode_choices

FIG = LinkFigures(loss_db=20.0, misalignment=0.01, dark_count_prob=1e-7, afterpulse_prob=0.005, block_size=1e6)
HELD = DecoyChoice((0.5, 0.1, 0.0), (0.7, 0.2, 0.1), 0.5)


def test_rate_is_key_length_per_pulse():
    stats, n_pulses = FIG.link_model(HELD).expected_stats(1e6, 1.16)
    kl = key_length(stats, DecoySettings(HELD.mu, HELD.p_mu, 1e-10, 1e-15))
    assert finite_key_rate(FIG, HELD) == pytest.approx(kl.length_bits / n_pulses)


def test_optimum_beats_start_and_its_neighbours():
    opt = optimize_decoy(FIG, fixed=HELD, start=HELD)
    assert opt.choice.p_mu == HELD.p_mu and opt.rate_per_pulse > finite_key_rate(FIG, HELD)
    mu1, mu2, _ = opt.choice.mu
    for d1, d2 in ((0.02, 0), (-0.02, 0), (0, 0.01), (0, -0.01)):
        near = replace(opt.choice, mu=(mu1 + d1, mu2 + d2, 0.0))
        assert finite_key_rate(FIG, near) <= opt.rate_per_pulse + 1e-12
    full = optimize_decoy(FIG, start=opt.choice)
    assert full.rate_per_pulse >= opt.rate_per_pulse


def report_for(fig: LinkFigures, choice: DecoyChoice) -> BlockReport:
    link = fig.link_model(choice)
    return BlockReport(block_id=0, qber_z=_qber_key(link),
                       gains_by_intensity={"z": [_any_click(link, k) for k in range(3)]})


def test_link_from_report_recovers_the_link():
    got = link_from_report(report_for(FIG, HELD), HELD, FIG.afterpulse_prob, FIG.block_size)
    assert got.loss_db == pytest.approx(FIG.loss_db, abs=1e-6)
    assert got.misalignment == pytest.approx(FIG.misalignment, abs=1e-6)
    assert got.dark_count_prob == pytest.approx(FIG.dark_count_prob, rel=1e-4)
    with pytest.raises(QkdInputError, match="gains"):
        link_from_report(BlockReport(block_id=0, qber_z=0.01), HELD, 0.0, 1e6)


def test_direct_tuner_sets_the_optimal_intensities():
    tuner = make_tuner("decoy-direct", 1.0, {"afterpulse_prob": FIG.afterpulse_prob})
    params = {"voa.1": 3.0103, "voa.2": 10.0, "voa.3": 45.0, "voa.on.3": 0.0}
    prop = tuner.propose([report_for(FIG, HELD)], params)
    best = optimize_decoy(FIG, fixed=HELD, start=HELD).choice
    assert prop.params == pytest.approx(attenuation_params(best.mu[0], best.mu[1], 1.0), abs=0.05)
    assert "not settable" in prop.reason and "full_optimum" in prop.extra
    # at the optimum it keeps the settings
    mu = (10 ** (-prop.params["voa.1"] / 10), 10 ** (-prop.params["voa.2"] / 10), 0.0)
    again = tuner.propose([report_for(FIG, replace(HELD, mu=mu))], {**params, **prop.params})
    assert again is None
    with pytest.raises(ConfigError, match="mu_at_0db"):
        make_tuner("decoy-direct", -1.0, {})


def test_predictor_learns_the_optimum(rng):
    """Trained on optima of links along the loss axis, it recovers the optimum in between."""
    figs = [replace(FIG, loss_db=float(x)) for x in np.linspace(8, 26, 12)]
    opts = [optimize_decoy(f).choice for f in figs]
    c = ProtocolConstants()
    pred = DecoyPredictor(hidden=(16,), seed=1).fit(np.array([f.features() for f in figs]), encode_choices(opts, c))
    for loss in (12.3, 21.7):
        fig = replace(FIG, loss_db=loss)
        got = finite_key_rate(fig, pred.predict(fig.features())[0])
        assert got >= 0.97 * optimize_decoy(fig).rate_per_pulse
    with pytest.raises(QkdInputError, match="not trained"):
        DecoyPredictor().predict(FIG.features())
    with pytest.raises(QkdInputError, match="features"):
        pred.predict(np.zeros(3))


def test_bad_figures_are_named():
    with pytest.raises(QkdInputError, match="misalignment"):
        LinkFigures(20.0, 0.7, 1e-7, 0.0, 1e6)
    with pytest.raises(QkdInputError, match="mu2"):
        attenuation_params(0.1, 0.5, 1.0)
    assert math.isclose(attenuation_params(0.5, 0.1, 1.0)["voa.2"], 10.0)
