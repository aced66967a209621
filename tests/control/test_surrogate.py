import numpy as np
import pytest

from qkdctl.control.actions import Action
from qkdctl.control.features import reward
from qkdctl.control.surrogate import (
    DriftTrace, SurrogateBench, SurrogateCalibration, benchmark_trace, random_trace, training_envs,
)
from qkdctl.core.errors import QkdInputError


def _one(action, rtt_s=5e-5, drift=0.0, seed=0):
    return SurrogateBench(DriftTrace(np.array([rtt_s]), np.array([drift])), np.random.default_rng(seed)).step(action)


def test_drift_raises_qber_of_long_blocks_by_sigma_squared_t_over_4():
    cal = SurrogateCalibration()
    for t in (0.02, 0.06):
        calm = _one(Action(t, "cascade-biconf", 150.0, 0.7))
        windy = _one(Action(t, "cascade-biconf", 150.0, 0.7), drift=1.0)
        floor = calm.qber_z
        # optical error adds ~linearly to the QBER at these small values
        assert windy.qber_z - floor == pytest.approx(1.0 * t / 4, rel=0.1)
    assert cal.misalignment_floor < calm.qber_z


def test_slow_channel_makes_ldpc_win_and_fast_channel_cascade():
    lan_c = reward(_one(Action(0.06, "cascade-biconf", 150.0, 0.7)))
    lan_l = reward(_one(Action(0.06, "ldpc-blind", 150.0, 0.7)))
    wan_c = reward(_one(Action(0.06, "cascade-biconf", 150.0, 0.7), rtt_s=1e-2))
    wan_l = reward(_one(Action(0.06, "ldpc-blind", 150.0, 0.7), rtt_s=1e-2))
    assert lan_c > lan_l and wan_l > wan_c
    rep = _one(Action(0.06, "cascade-biconf", 150.0, 0.7), rtt_s=1e-2)
    assert rep.stage_seconds["reconcile"] > rep.round_trips * 1e-2
    assert rep.telemetry["channel_rtt_s"] == pytest.approx(1e-2, rel=0.5)


def test_ldpc_efficiency_follows_its_highest_rate_at_low_qber():
    cal = SurrogateCalibration()
    assert cal.efficiency("ldpc-blind", 0.003) > 2.5
    assert cal.efficiency("ldpc-blind", 0.05) == pytest.approx(1.1)
    assert cal.efficiency("cascade-biconf", 0.003) == cal.cascade_f


def test_basis_bias_scales_sifting_against_bobs_fixed_split():
    lo, hi = _one(Action(0.06, "cascade-biconf", 150.0, 0.7)), _one(Action(0.06, "cascade-biconf", 150.0, 0.9))
    # Bob's Z arm gets 0.7 of the light either way: sifted Z ~ p_A, sifted X ~ 1 - p_A
    assert hi.sifted_bits_z / lo.sifted_bits_z == pytest.approx(0.9 / 0.7, rel=1e-3)
    assert hi.sifted_bits_x / lo.sifted_bits_x == pytest.approx(0.1 / 0.3, rel=1e-3)
    assert hi.detections == pytest.approx(lo.detections, rel=1e-3)
    # the finite key: a long calm block gains from the bias, a short windy one loses (X sample too small)
    assert hi.key_bits > 1.05 * lo.key_bits
    short_lo = _one(Action(0.02, "cascade-biconf", 150.0, 0.7), drift=1.5)
    short_hi = _one(Action(0.02, "cascade-biconf", 150.0, 0.9), drift=1.5)
    assert short_hi.key_bits < 0.8 * short_lo.key_bits


def test_ldpc_blind_fails_under_fast_drift_at_the_measured_rate():
    cal = SurrogateCalibration()
    act = Action(0.06, "ldpc-blind", 150.0, 0.7)
    calm = [_one(act, drift=0.2, seed=s) for s in range(40)]
    assert all(r.status == "ok" for r in calm)
    windy = [_one(act, drift=1.5, seed=s) for s in range(400)]
    failed = [r for r in windy if r.abort_reason == "reconciliation failed (ldpc under drift)"]
    assert len(failed) / len(windy) == pytest.approx(cal.ldpc_drift_fail_prob, abs=0.06)
    assert all(r.key_bits == 0 and reward(r) == 0.0 for r in failed)
    assert _one(Action(0.06, "cascade-biconf", 150.0, 0.7), drift=1.5).status == "ok"


def test_too_much_drift_aborts_the_block():
    rep = _one(Action(0.06, "cascade-biconf", 150.0, 0.7), drift=4.0)
    assert rep.status == "aborted" and rep.key_bits == 0 and reward(rep) == 0.0


def test_traces_and_their_errors():
    tr = benchmark_trace(8)
    assert tr.rtt_s.tolist() == [5e-5, 5e-5, 1e-2, 1e-2, 1e-2, 1e-2, 5e-5, 5e-5]
    assert tr.drift_rad_per_sqrt_s.tolist() == [0.2] * 4 + [1.5] * 4
    r = random_trace(30, np.random.default_rng(1))
    assert len(r) == 30 and len(set(r.rtt_s.tolist())) <= 2
    envs = training_envs(3, 5)(np.random.default_rng(2))
    assert len(envs) == 3 and all(len(e.trace) == 5 for e in envs)
    with pytest.raises(QkdInputError, match="equal-length"):
        DriftTrace(np.zeros(2), np.zeros(3))
    with pytest.raises(QkdInputError, match=">= 0"):
        DriftTrace(np.array([-1.0]), np.array([0.0]))
    with pytest.raises(QkdInputError, match=">= 4 blocks"):
        benchmark_trace(3)


def test_a_finished_trace_cannot_step():
    sb = SurrogateBench(DriftTrace(np.zeros(1), np.zeros(1)), np.random.default_rng(0))
    sb.step(Action(0.02, "cascade-biconf", 150.0, 0.7))
    assert sb.done
    with pytest.raises(QkdInputError, match="finished"):
        sb.step(Action(0.02, "cascade-biconf", 150.0, 0.7))


@pytest.mark.slow
@pytest.mark.parametrize("act", [Action(0.02, "cascade-biconf", 150.0, 0.7), Action(0.06, "cascade-biconf", 150.0, 0.9)])
def test_surrogate_agrees_with_the_simulated_bench(act):
    """Calibration check: one block of SimBench + the real pipeline against the surrogate."""
    from benchmarks.control_sim import SimBenchEnv

    trace = DriftTrace(np.array([5e-5]), np.array([0.0]))
    sim = SimBenchEnv(trace, 3).step(act)
    sur = _one(act)
    assert sim.status == "ok"
    assert sur.sifted_bits_z == pytest.approx(sim.sifted_bits_z, rel=0.05)
    assert sur.sifted_bits_x == pytest.approx(sim.sifted_bits_x, rel=0.1)
    assert sur.qber_z == pytest.approx(sim.qber_z, rel=0.3)
    assert sur.key_bits == pytest.approx(sim.key_bits, rel=0.15)
