"""SimBench: determinism, rates, knobs that change the physics, tagger behaviour, errors."""

import math
import threading

import numpy as np
import pytest

from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock
from tests.firmware_sim.simhelpers import detections, qber, quiet_config


def test_same_seed_same_tags():
    cfg = SimConfig()
    a, b, c = SimBench(cfg, 5), SimBench(cfg, 5), SimBench(cfg, 6)
    for _ in range(2):
        ba, bb, bc = a.acquire(2e-3), b.acquire(2e-3), c.acquire(2e-3)
        assert np.array_equal(ba.tags.t_ps, bb.tags.t_ps)
        assert np.array_equal(ba.tags.channel, bb.tags.channel)
        assert np.array_equal(ba.alice.bit, bb.alice.bit)
    assert not np.array_equal(ba.alice.bit, bc.alice.bit)
    assert ba.block_id == 2 and ba.alice.first_slot == 2_000_000
    assert a.now_s == pytest.approx(4e-3)


def test_alice_record_does_not_depend_on_block_boundaries():
    # the counter generator: slot i's choice is a function of (seed, i) alone
    cfg = SimConfig()
    one = SimBench(cfg, 5).acquire(2e-3).alice
    split = SimBench(cfg, 5)
    parts = [split.acquire(5e-4).alice, split.acquire(1.5e-3).alice]
    for name in ("basis", "bit", "intensity"):
        assert np.array_equal(getattr(one, name), np.concatenate([getattr(p, name) for p in parts]))
    assert parts[1].first_slot == 500_000


def test_detection_rate_matches_coherent_model():
    bench = SimBench(quiet_config(), 1)
    block = bench.acquire(5e-3)
    cfg = bench.config
    t = 10 ** (-(0.2 * 10 + cfg.bob_loss_db) / 10) * 0.5
    mu = block.truth["mu"]
    p_int = np.array(cfg.source.p_intensity)
    expected = block.truth["n_slots"] * np.sum(p_int * -np.expm1(-mu * t)) + 4 * 1000 * 5e-3
    n_det = int(np.sum(block.tags.channel != 0))
    assert abs(n_det - expected) < 5 * math.sqrt(expected)
    rates = bench.count_rates_hz()
    assert rates[0] == pytest.approx(1e9 / cfg.source.sync_divider)
    assert sum(rates[c] for c in (1, 2, 3, 4)) == pytest.approx(n_det / 5e-3)


def test_sync_every_divider_slots():
    bench = SimBench(quiet_config(source={"sync_divider": 250}), 1)
    block = bench.acquire(1e-4)
    sync = block.tags.t_ps[block.tags.channel == 0]
    assert sync.size == 400
    assert np.all(np.diff(sync) == 250_000)


def test_qber_follows_paddles():
    bench = SimBench(quiet_config(), 2)
    q0 = qber(bench, bench.acquire(5e-3))
    assert q0["qber_Z"] < 0.01 and q0["qber_X"] < 0.01
    bench.set_paddle_deg(1, 20.0)
    bench.set_paddle_deg(2, 10.0)
    block = bench.acquire(5e-3)
    q1 = qber(bench, block)
    for b in ("Z", "X"):
        e = block.truth[f"e_{b.lower()}"]
        sigma = math.sqrt(e * (1 - e) / q1[f"n_{b}"])
        assert e > 0.05
        assert abs(q1[f"qber_{b}"] - e) < 5 * sigma + 0.005  # + dark counts
    bench.set_paddle_deg(1, 0.0)
    bench.set_paddle_deg(2, 0.0)
    assert qber(bench, bench.acquire(5e-3))["qber_Z"] < 0.01


def test_epc_model_in_light_path():
    bench = SimBench(quiet_config(controller={"model": "epc"}), 2)
    bench.set_epc_voltage_mv(2, 2500.0)  # 45-deg squeezer at V_pi: half-wave plate, H <-> V
    block = bench.acquire(3e-3)
    assert block.truth["e_z"] == pytest.approx(1.0)
    assert qber(bench, block)["qber_Z"] > 0.98
    bench.set_paddle_deg(1, 30.0)  # the MPC320 is not in the light path
    assert bench.acquire(1e-3).truth["e_z"] == pytest.approx(1.0)


def test_attenuator_sets_intensities():
    bench = SimBench(quiet_config(), 3)
    assert bench.mu() == pytest.approx([10**-0.30103, 0.1, 0.0])
    bench.set_attenuation_db(1, 0.0)
    bench.set_output_enabled(3, True)
    bench.set_attenuation_db(3, 30.0)
    assert bench.mu() == pytest.approx([1.0, 0.1, 1e-3])
    q_hi = qber(bench, bench.acquire(4e-3))
    bench.set_attenuation_db(1, 10.0)
    bench.set_output_enabled(2, False)
    q_lo = qber(bench, bench.acquire(4e-3))
    t = 10 ** (-(0.2 * 10 + 1.0) / 10) * 0.5
    want = math.expm1(-1.0 * t) / math.expm1(-0.1 * t)
    assert q_hi["gain_signal"] / q_lo["gain_signal"] == pytest.approx(want, rel=0.08)
    assert q_lo["gain_decoy"] < 1e-4  # decoy shutter closed: dark counts only
    assert bench.attenuation_db(1) == 10.0 and not bench.output_enabled(2)


def test_voa_wavelength_mismatch_adds_loss():
    bench = SimBench(quiet_config(source={"voa_wdl_db_per_nm": 0.1}), 3)
    bench.set_wavelength_m(1, 1560e-9)
    assert bench.wavelength_m(1) == 1560e-9
    assert bench.mu()[0] == pytest.approx(10 ** (-(3.0103 + 1.0) / 10))


def test_tagger_delay_moves_tags():
    a, b = SimBench(quiet_config(), 4), SimBench(quiet_config(), 4)
    b.set_tagger_delay_ps(2, 123_456)
    assert b.tagger_delay_ps(2) == 123_456
    ba, bb = a.acquire(1e-3), b.acquire(1e-3)
    ta = ba.tags.t_ps[ba.tags.channel == 2]
    tb = bb.tags.t_ps[bb.tags.channel == 2]
    assert np.array_equal(tb, ta + 123_456)
    assert np.array_equal(ba.tags.t_ps[ba.tags.channel == 1], bb.tags.t_ps[bb.tags.channel == 1])


def test_trigger_level_and_channel_enable():
    bench = SimBench(quiet_config(), 5)
    bench.set_trigger_level_v(3, 1.5)  # above the detector pulse height
    bench.set_tagger_channel_enabled(4, False)
    bench.set_trigger_level_v(1, 0.0)  # in the noise
    block = bench.acquire(2e-3)
    n = np.bincount(block.tags.channel, minlength=5)
    assert n[3] == 0 and n[4] == 0
    assert n[1] > n[2] + 0.5 * 1e6 * 2e-3  # noise at 1 MHz on top of the clicks
    assert bench.trigger_level_v(3) == 1.5 and not bench.tagger_channel_enabled(4)


def test_tagger_dead_time_and_resolution():
    bench = SimBench(quiet_config(tagger={"resolution_ps": 50}), 5)
    bench.set_tagger_dead_time_ps(1, 1_000_000)
    block = bench.acquire(2e-3)
    t1 = block.tags.t_ps[block.tags.channel == 1]
    assert np.all(np.diff(t1) >= 1_000_000)
    assert np.all(block.tags.t_ps % 50 == 0)
    assert bench.tagger_dead_time_ps(1) == 1_000_000


def test_overflow_is_reported():
    bench = SimBench(quiet_config(), 6)
    assert not bench.acquire(1e-3).tags.overflow
    bench.set_tagger_buffer(1e5, 100)
    block = bench.acquire(2e-3)
    assert block.tags.overflow and block.tags.missed_events > 0
    assert bench.tagger_buffer() == (1e5, 100)


def test_detector_dead_time_limits_rate():
    cfg = quiet_config(fiber={"length_km": 0.0}, detectors=[{"efficiency": 0.9, "dead_time_ps": 100_000}] * 4)
    block = SimBench(cfg, 7).acquire(1e-3)
    for c in (1, 2, 3, 4):
        t = block.tags.t_ps[block.tags.channel == c]
        assert np.all(np.diff(t) >= 100_000 - 200)  # minus jitter
        assert t.size <= 1e-3 / 100e-9 + 1


def test_drift_changes_rotation_and_delay():
    cfg = quiet_config(fiber={"drift_rad_per_sqrt_s": 1.0, "delay_drift_ps_per_s": 1e4})
    bench = SimBench(cfg, 8)
    b1 = bench.acquire(2e-3)
    b2 = bench.acquire(2e-3)
    assert not np.allclose(b1.truth["fiber_rotation"], b2.truth["fiber_rotation"])
    assert b2.truth["fiber_delay_ps"] - b1.truth["fiber_delay_ps"] == pytest.approx(20.0, rel=1e-6)


def test_afterpulses_follow_clicks():
    # low rate (~1 MHz per detector): afterpulses rarely fall into another click's dead time
    cfg = quiet_config(detectors=[{"efficiency": 0.05, "dead_time_ps": 10_000, "afterpulse_prob": 0.05,
                                   "afterpulse_delay_ps": 50_000.0}] * 4)
    block = SimBench(cfg, 9).acquire(5e-3)
    clicks = block.truth["clicks_per_detector"].sum()
    expected = 0.05 * clicks  # every counted click (afterpulses too) may afterpulse
    assert abs(block.truth["afterpulses"] - expected) < 5 * math.sqrt(expected) + 0.03 * expected


def test_bad_input_raises():
    bench = SimBench(SimConfig(), 0)
    with pytest.raises(QkdInputError, match="attenuation"):
        bench.set_attenuation_db(1, 60)
    with pytest.raises(QkdInputError, match="VOA channel"):
        bench.set_attenuation_db(5, 1)
    with pytest.raises(QkdInputError, match="paddle"):
        bench.set_paddle_deg(2, 171)
    with pytest.raises(QkdInputError, match="EPC voltage"):
        bench.set_epc_voltage_mv(1, 6000)
    with pytest.raises(QkdInputError, match="tagger channel 9"):
        bench.set_tagger_delay_ps(9, 0)
    with pytest.raises(QkdInputError, match="duration"):
        bench.acquire(0)
    with pytest.raises(QkdInputError, match="max_slots"):
        bench.acquire(10.0)
    with pytest.raises(QkdInputError, match="seed"):
        SimBench(SimConfig(), -1)
    with pytest.raises(QkdInputError, match="SimConfig"):
        SimBench({}, 1)
    with pytest.raises(ConfigError, match="pulse_rate_hz"):
        SimConfig.build(source={"pulse_rate_hz": 5e9})
    with pytest.raises(ConfigError, match="channels"):
        SimConfig.build(tagger={"channels": {"sync": 0}})


def test_threads_share_one_lock():
    bench = SimBench(quiet_config(), 10)
    errors = []

    def knob():
        try:
            for k in range(50):
                bench.set_paddle_deg(1, float(k % 170))
                bench.set_attenuation_db(2, 10.0 + k % 5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=knob) for _ in range(3)]
    for t in threads:
        t.start()
    blocks = [bench.acquire(2e-4) for _ in range(5)]
    for t in threads:
        t.join()
    assert not errors
    assert [b.block_id for b in blocks] == [1, 2, 3, 4, 5]
    assert all(np.all(np.diff(b.tags.t_ps) >= 0) for b in blocks)


def test_detections_map_to_alice_slots():
    bench = SimBench(quiet_config(), 11)
    block = bench.acquire(1e-3)
    slot, det = detections(bench, block)
    # tags sit within a few jitter sigmas of their slot time
    period = 1000.0
    t = block.tags.t_ps[block.tags.channel != 0]
    resid = (t - block.truth["fiber_delay_ps"]) / period
    assert np.mean(np.abs(resid - np.rint(resid)) < 0.2) > 0.99
    assert slot.size > 1000


def test_benchmark_baseline_does_comparable_work():
    # the numpy baseline of `qkdctl bench sim` makes the same number of tags (no dead time here)
    from benchmarks.bench_sim import numpy_link

    cfg = quiet_config(tagger={"dead_time_ps": 0})
    bench = SimBench(cfg, 13)
    block = bench.acquire(2e-3)
    t, ch, basis, bit, inten = numpy_link(cfg, bench.mu(), block.truth["n_slots"], np.random.default_rng(1))
    assert np.all(np.diff(t) >= 0) and basis.size == len(block.alice)
    n_sim = int(np.sum(block.tags.channel != 0))
    n_base = int(np.sum(ch != 0))
    assert abs(n_sim - n_base) < 5 * math.sqrt(n_sim)
    assert np.sum(ch == 0) == np.sum(block.tags.channel == 0)


def test_choice_probabilities_apply_from_next_acquisition():
    bench = SimBench(quiet_config(), 3)
    first = bench.acquire(1e-3).alice
    assert bench.choice_probabilities() == (0.5, (0.7, 0.2, 0.1))
    bench.set_choice_probabilities(0.9, (0.2, 0.3, 0.5))
    assert bench.choice_probabilities() == (0.9, (0.2, 0.3, 0.5))
    assert bench.config.p_bob_z == SimConfig().p_bob_z  # Bob's splitter is a fixed component
    second = bench.acquire(1e-3).alice
    n = len(second)
    assert abs(np.mean(first.basis == 0) - 0.5) < 0.01
    assert abs(np.mean(second.basis == 0) - 0.9) < 0.01
    for k, p in enumerate((0.2, 0.3, 0.5)):
        assert abs(np.mean(second.intensity == k) - p) < 5 * math.sqrt(p * (1 - p) / n)
    for p_z, p_mu in ((1.0, (0.7, 0.2, 0.1)), (0.5, (0.7, 0.2, 0.2)), (0.5, (1.1, -0.1, 0.0))):
        with pytest.raises(QkdInputError, match="P\\(Z\\)|intensity probabilities"):
            bench.set_choice_probabilities(p_z, p_mu)
    assert bench.choice_probabilities() == (0.9, (0.2, 0.3, 0.5))


@pytest.mark.parametrize("case", ["default", "eve", "delays", "far_delays"])
def test_trusted_record_and_tags_hold_the_checked_invariants(case):
    # SimBench builds AliceRecord.trusted / TagBlock.trusted: its arrays must pass the full checks
    data = {"fiber": {"length_km": 2.0}, "detectors": [{"jitter_ps": 300.0, "dark_count_hz": 1e5}] * 4}
    if case == "eve":
        data["eve"] = {"intercept_resend_fraction": 0.5}
    bench = SimBench(SimConfig.build(**data), 3)
    ch = bench.tagger_channels()
    if case in ("delays", "far_delays"):
        scale = 1 if case == "delays" else 1000
        for k, role in enumerate(("H", "V", "D", "A")):
            bench.set_tagger_delay_ps(ch[role], scale * (-40 * k + 70))
        bench.set_trigger_level_v(ch["D"], 0.01)  # noise edges on one detector input
    for _ in range(2):
        block = bench.acquire(1e-3)
        checked = TagBlock(block.tags.t_ps, block.tags.channel)  # raises on out-of-order tags
        assert len(checked) == len(block.tags) > 100
        a = block.alice
        AliceRecord(a.basis, a.bit, a.intensity, a.first_slot)  # raises on out-of-range values
        assert set(np.unique(a.intensity)) == {0, 1, 2} and a.basis.max() == 1 and a.bit.max() == 1
