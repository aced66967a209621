"""Link model: squashing against enumeration, closed forms, and the seeded block generator."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.errors import QkdInputError
from qkdctl.core.linkmodel import LinkModel, generate_block, squash
from tests.naive.keyrate import squash_by_enumeration

BASE = dict(
    fiber_loss_db_per_km=0.2, detector_efficiency=0.1, dark_count_prob=6e-7, afterpulse_prob=0.04,
    misalignment=0.005, intensities=(0.5, 0.1, 2e-4), intensity_probs=(0.6, 0.2, 0.2), key_basis_prob=0.8,
)


def model(**kw) -> LinkModel:
    return LinkModel(**{**BASE, **kw})


def test_squash_hand_case():
    # only H can click: Z basis, bit 0, with probability c_H
    assert squash((0.3, 0.0, 0.0, 0.0)) == pytest.approx((0.3, 0.0, 0.0, 0.0))
    # H and D always click: random basis, each with its arm's bit
    assert squash((1.0, 0.0, 1.0, 0.0)) == pytest.approx((0.5, 0.0, 0.5, 0.0))
    # H and V always click: Z basis, random bit
    assert squash((1.0, 1.0, 0.0, 0.0)) == pytest.approx((0.5, 0.5, 0.0, 0.0))


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[st.floats(0.0, 1.0)] * 4))
def test_squash_matches_enumeration(c):
    assert squash(c) == pytest.approx(squash_by_enumeration(c), abs=1e-12)


def test_transmittance_and_low_loss_formula():
    m = model(distance_km=50.0)
    assert m.eta == pytest.approx(10 ** (-1.0) * 0.1)
    # no dark counts, no afterpulses, no misalignment: gain = 1 - exp(-eta mu q) per arm
    clean = model(distance_km=50.0, dark_count_prob=0.0, afterpulse_prob=0.0, misalignment=0.0)
    r = clean.expected_rates()
    for k, mu in enumerate(clean.intensities):
        lam_z = clean.eta * mu * 0.8
        lam_x_each = clean.eta * mu * 0.1
        p_x_any = 1 - math.exp(-2 * lam_x_each)
        assert r.gain_key[k] == pytest.approx((1 - math.exp(-lam_z)) * (1 - p_x_any / 2))
        assert r.err_key[k] == pytest.approx(0.0, abs=1e-15)


def test_dark_counts_only_give_half_errors():
    m = model(distance_km=1000.0)  # no signal left
    r = m.expected_rates()
    for k in range(3):
        assert r.err_key[k] == pytest.approx(0.5 * r.gain_key[k], rel=1e-3)
        assert r.gain_key[k] == pytest.approx(2 * 6e-7 * (1 + 0.04), rel=1e-3)  # darks + their afterpulses


def test_expected_stats_scale_to_block_size():
    m = model(distance_km=30.0)
    stats, n_pulses = m.expected_stats(1e6, 1.16)
    assert sum(stats.n_key) == pytest.approx(1e6)
    assert n_pulses == pytest.approx(1e6 / m.key_detection_prob())
    assert sum(stats.n_test) / sum(stats.n_key) == pytest.approx((0.2 / 0.8) ** 2, rel=0.05)


def test_generate_block_statistics_match_model(rng):
    m = model(distance_km=0.0, intensities=(0.8, 0.3, 0.05), dark_count_prob=1e-3, afterpulse_prob=0.02,
              misalignment=0.03, key_basis_prob=0.6, detector_efficiency=0.5)
    n = 200_000
    rec, tags = generate_block(m, n, rng, pulse_period_ps=800.0, gate_offset_ps=200.0)
    assert len(rec) == n
    assert np.all(np.diff(tags.t_ps) >= 0)
    det = tags.channel != DEFAULT_CHANNELS["sync"]
    assert np.count_nonzero(~det) == n
    slot = (tags.t_ps[det] - 200) // 800
    assert np.all((tags.t_ps[det] - 200) % 800 == 0)
    role = {DEFAULT_CHANNELS[r]: i for i, r in enumerate("HVDA")}
    det_idx = np.array([role[c] for c in tags.channel[det]])
    clicks = np.zeros((n, 4), dtype=bool)
    clicks[slot, det_idx] = True
    # squash with a fixed rule for the comparison: only single-arm events, unambiguous bits
    z_only = (clicks[:, 0] ^ clicks[:, 1]) & ~clicks[:, 2] & ~clicks[:, 3]
    table = m.primary_click_table()
    ap = m.afterpulse_click()
    total = 1 - (1 - table) * (1 - ap)
    for k in range(3):
        sel = (rec.intensity == k) & (rec.basis == 0) & (rec.bit == 0)
        c = total[k, 0, 0]
        expect = (c[0] * (1 - c[1]) + c[1] * (1 - c[0])) * (1 - c[2]) * (1 - c[3])
        got = np.count_nonzero(z_only[sel])
        sigma = math.sqrt(sel.sum() * expect * (1 - expect))
        assert abs(got - sel.sum() * expect) < 5 * sigma
        wrong = np.count_nonzero(z_only[sel] & clicks[sel, 1])
        expect_wrong = sel.sum() * c[1] * (1 - c[0]) * (1 - c[2]) * (1 - c[3])
        assert abs(wrong - expect_wrong) < 5 * math.sqrt(expect_wrong) + 5
    # Alice's choices follow the model's probabilities
    assert np.mean(rec.basis == 0) == pytest.approx(0.6, abs=0.01)
    assert np.bincount(rec.intensity, minlength=3) / n == pytest.approx([0.6, 0.2, 0.2], abs=0.01)


def test_generate_block_afterpulses_follow_clicks(rng):
    kw = dict(distance_km=0.0, intensities=(0.9, 0.3, 0.05), detector_efficiency=0.9, key_basis_prob=0.5)
    m = model(afterpulse_prob=0.5, **kw)
    _, tags = generate_block(m, 50_000, rng, pulse_period_ps=1000.0, gate_offset_ps=0.0, sync_divider=10)
    assert np.count_nonzero(tags.channel == 0) == 5000
    _, plain = generate_block(model(afterpulse_prob=0.0, **kw), 50_000, np.random.default_rng(1))
    extra = np.count_nonzero(tags.channel != 0) / np.count_nonzero(plain.channel != 0)
    # stationary click probability per detector: 1 - (1 - <c_j>)(1 - p_ap <c_j>)
    mean_c = m.afterpulse_click() / 0.5
    expected = np.sum(1 - (1 - mean_c) * (1 - 0.5 * mean_c)) / np.sum(mean_c)
    assert extra == pytest.approx(expected, rel=0.03)


def test_generate_block_is_reproducible_and_seeded():
    m = model(distance_km=10.0)
    a = generate_block(m, 10_000, np.random.default_rng(5), first_slot=100)
    b = generate_block(m, 10_000, np.random.default_rng(5), first_slot=100)
    assert np.array_equal(a[1].t_ps, b[1].t_ps) and np.array_equal(a[0].basis, b[0].basis)
    assert a[0].first_slot == 100 and a[1].start_ps == 100_000


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(detector_efficiency=0.0), "detector_efficiency"),
        (dict(dark_count_prob=1.0), "dark_count_prob"),
        (dict(misalignment=0.7), "misalignment"),
        (dict(key_basis_prob=1.0), "key_basis_prob"),
        (dict(distance_km=-1.0), "distance_km"),
        (dict(intensities=(0.5, 0.1, 0.1)), "mu2 > mu3"),
        (dict(intensity_probs=(0.5, 0.2, 0.2)), "sum to 1"),
    ],
)
def test_bad_link_parameters_raise(kw, match):
    with pytest.raises(QkdInputError, match=match):
        model(**kw)


def test_bad_generator_arguments_raise(rng):
    m = model()
    with pytest.raises(QkdInputError, match="n_pulses"):
        generate_block(m, 0, rng)
    with pytest.raises(QkdInputError, match="gate_offset_ps"):
        generate_block(m, 10, rng, pulse_period_ps=100.0, gate_offset_ps=150.0)
    with pytest.raises(QkdInputError, match="lacks roles"):
        generate_block(m, 10, rng, channels={"sync": 0, "H": 1})
    with pytest.raises(QkdInputError, match="block size"):
        m.expected_stats(0, 1.16)
