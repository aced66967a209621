"""Eve's attacks leave the signatures they should."""

import math

import numpy as np
import pytest

from firmware_sim.bench import SimBench
from tests.firmware_sim.simhelpers import qber, quiet_config


def test_eve_off_by_default():
    block = SimBench(quiet_config(), 1).acquire(1e-3)
    assert block.truth["eve"] == {}


def test_intercept_resend_gives_25_percent():
    bench = SimBench(quiet_config(eve={"intercept_resend_fraction": 1.0}), 2)
    block = bench.acquire(5e-3)
    q = qber(bench, block)
    for b in ("Z", "X"):
        assert abs(q[f"qber_{b}"] - 0.25) < 5 * math.sqrt(0.25 * 0.75 / q[f"n_{b}"]) + 0.003
    assert block.truth["eve"]["intercepted"] > 0


def test_partial_intercept_resend_scales():
    bench = SimBench(quiet_config(eve={"intercept_resend_fraction": 0.4}), 3)
    q = qber(bench, bench.acquire(5e-3))
    assert abs(q["qber_Z"] - 0.1) < 0.01


def test_pns_keeps_signal_gain_but_changes_decoy_ratio():
    base = quiet_config(fiber={"length_km": 50.0})
    honest = qber(*(lambda b: (b, b.acquire(2e-2)))(SimBench(base, 4)))
    cfg = quiet_config(fiber={"length_km": 50.0}, eve={"pns_fraction": 1.0})
    bench = SimBench(cfg, 4)
    block = bench.acquire(2e-2)
    attacked = qber(bench, block)
    assert attacked["gain_signal"] == pytest.approx(honest["gain_signal"], rel=0.05)
    # decoy pulses carry fewer multi-photon events: their gain drops well below honest
    assert attacked["gain_decoy"] < 0.7 * honest["gain_decoy"]
    assert attacked["qber_Z"] < 0.02  # PNS leaves no errors
    eve = block.truth["eve"]
    assert eve["pns_kept"] > 0 and eve["pns_blocked"] > 0


def test_blinding_forces_clicks_without_errors():
    cfg = quiet_config(eve={"blinding_fraction": 1.0},
                       detectors=[{"efficiency": 0.5, "dark_count_hz": 1e5, "dead_time_ps": 0,
                                   "afterpulse_prob": 0.1}] * 4)
    bench = SimBench(cfg, 5)
    block = bench.acquire(3e-3)
    q = qber(bench, block)
    assert q["qber_Z"] < 1e-3 and q["qber_X"] < 1e-3
    assert block.truth["dark_counts"] == 0 and block.truth["afterpulses"] == 0
    n_det = int(block.truth["clicks_per_detector"].sum())  # before the tagger's limits
    assert n_det == block.truth["eve"]["blind_clicks"]
    # Eve only fakes clicks when Bob's basis matches hers: half of her non-empty pulses
    mu = block.truth["mu"]
    p_int = np.array(bench.config.source.p_intensity)
    expected = 0.5 * block.truth["n_slots"] * np.sum(p_int * -np.expm1(-mu))
    assert abs(n_det - expected) < 5 * math.sqrt(expected)


def test_time_shift_biases_detectors():
    # bit-0 detectors (H, D) peak 100 ps late, bit-1 detectors (V, A) 100 ps early
    det = {"efficiency": 0.5, "dead_time_ps": 0, "window_width_ps": 60.0}
    dets = [{**det, "window_center_ps": c} for c in (100.0, -100.0, 100.0, -100.0)]
    cfg = quiet_config(detectors=dets, eve={"time_shift_fraction": 1.0, "time_shift_ps": 100.0})
    block = SimBench(cfg, 6).acquire(5e-3)
    ts = block.truth["eve"]["time_shift"]  # [sign +/-, Bob's bit]
    assert ts[0, 0] > 10 * ts[0, 1] and ts[1, 1] > 10 * ts[1, 0]


def _eve_pair(seed, n, fractions, shift_ps, widths):
    from firmware_sim.config import EveConfig, SourceConfig
    from firmware_sim.physics import eve as eve_physics
    from firmware_sim.physics.polarization import detector_probabilities, mpc320_unitary
    from tests.naive import sim as naive

    f_ir, f_pns, f_blind, f_ts = fractions
    src = SourceConfig(p_intensity=(0.5, 0.3, 0.2), p_z=0.6)
    eve = EveConfig(intercept_resend_fraction=f_ir, pns_fraction=f_pns, blinding_fraction=f_blind,
                    time_shift_fraction=f_ts, time_shift_ps=shift_ps)
    mu = np.array([0.8, 0.2, 0.01])
    p_det = detector_probabilities(mpc320_unitary([10, 5, 0]), 0.5)
    eff = np.array([0.5, 0.4, 0.6, 0.3])
    center = np.array([30.0, -30.0, 0.0, 10.0])
    width = np.array(widths)
    jitter = np.array([10.0, 0.0, 20.0, 5.0])
    stats = {}
    got = eve_physics.simulate_slots_with_eve(
        np.random.default_rng(seed), 77, 3, n, src, eve, mu, 0.3, p_det, eff, center, width, stats,
        1000.0, 500.0, jitter, t_bob=0.9, p_bob_z=0.5,
    )
    ref = naive.eve_slots(
        np.random.default_rng(seed), 77, 3, n, naive.choice_weights(src.p_intensity, src.p_z, src.p_bit_one),
        1000.0, 500.0, jitter,
        mu, 0.3, 0.9, p_det, eff, center, width, f_ir, f_pns, f_blind, f_ts, shift_ps,
        stats["pns_block"], stats["pns_forward"], 0.5,
    )
    return got, ref, stats


@pytest.mark.parametrize(
    "fractions,shift_ps,widths",
    [
        ((0.3, 0.3, 0.0, 0.5), 40.0, [50.0, 50.0, 0.0, 20.0]),
        ((0.0, 0.0, 0.6, 0.0), 0.0, [0.0, 0.0, 0.0, 0.0]),
        ((1.0, 0.0, 0.0, 0.0), 0.0, [50.0, 0.0, 0.0, 0.0]),
        ((0.0, 1.0, 0.0, 0.0), 0.0, [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_eve_kernel_matches_naive(fractions, shift_ps, widths):
    got, ref, stats = _eve_pair(11, 3000, fractions, shift_ps, widths)
    for a, b in zip(got, ref[:5]):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    counts = [stats["intercepted"], stats["pns_kept"], stats["pns_blocked"], stats["blind_clicks"],
              *stats["time_shift"].ravel()]
    assert counts == ref[5]
    assert len(got[3]) > 0
