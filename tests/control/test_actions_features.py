import math

import numpy as np
import pytest

from qkdctl.blockreport import BlockReport
from qkdctl.control.actions import Action, ActionSpace
from qkdctl.control.features import N_FEATURES, block_features, reward, wall_seconds
from qkdctl.core.errors import QkdInputError


def test_action_index_is_a_bit_string_of_the_axes():
    sp = ActionSpace((0.01, 0.1), ("cascade-biconf", "ldpc"), (100.0, 500.0), (0.5, 0.8))
    assert sp.n_actions == 16
    assert sp.action(0) == Action(0.01, "cascade-biconf", 100.0, 0.5)
    assert sp.action(1) == Action(0.1, "cascade-biconf", 100.0, 0.5)
    assert sp.action(2) == Action(0.01, "ldpc", 100.0, 0.5)
    assert sp.action(4) == Action(0.01, "cascade-biconf", 500.0, 0.5)
    assert sp.action(7) == Action(0.1, "ldpc", 500.0, 0.5)
    assert sp.action(8) == Action(0.01, "cascade-biconf", 100.0, 0.8)
    assert sp.action(15) == Action(0.1, "ldpc", 500.0, 0.8)
    assert [sp.index(sp.action(k)) for k in range(16)] == list(range(16))
    assert ActionSpace.from_dict(sp.to_dict()) == sp
    assert sp.action(13).params() == {"block.seconds": 0.1, "gate.width_ps": 500.0, "alice.p_z": 0.8}


@pytest.mark.parametrize("kwargs, match", [
    ({"block_seconds": (0.01,)}, "block_seconds needs exactly 2"),
    ({"block_seconds": (0.0, 0.1)}, "block_seconds must be > 0"),
    ({"gate_widths_ps": (-1.0, 100.0)}, "gate_widths_ps must be > 0"),
    ({"alice_p_z": (0.5, 1.0)}, "alice_p_z must lie in"),
])
def test_bad_action_space_is_named(kwargs, match):
    with pytest.raises(QkdInputError, match=match):
        ActionSpace(**kwargs)


def test_bad_action_index():
    with pytest.raises(QkdInputError, match="out of range 0..15"):
        ActionSpace().action(16)


def _rep(**kw):
    base = dict(block_id=0, duration_s=0.02, detections=200_000, qber_z=0.01, qber_x=0.013, method="ldpc-blind",
                ec_efficiency=2.0, round_trips=4, stage_seconds={"reconcile": 0.04, "gate": 0.1, "acquire": 0.5},
                params={"gate.width_ps": 400.0}, key_bits=30_000)
    base.update(kw)
    return BlockReport(**base)


def test_features_of_a_hand_made_history():
    x = block_features([_rep(qber_x=0.008), _rep()])
    assert x.shape == (N_FEATURES,)
    assert x[0] == pytest.approx(0.1) and x[1] == pytest.approx(0.13)
    assert x[2] == pytest.approx((0.013 - 0.003) / 0.02)
    assert x[3] == pytest.approx(10 * (0.013 - 0.008))
    assert x[4] == pytest.approx(math.log10(200_000 / 0.02) / 7)
    assert x[5] == 1.0 and x[6] == pytest.approx(0.4) and x[7] == pytest.approx(0.04)
    assert x[8] == pytest.approx(0.0)  # 4 round trips: too few to estimate the RTT; none measured
    assert x[9] == pytest.approx(0.2) and x[10] == pytest.approx(0.4) and x[11] == 0.0
    assert np.all(block_features([]) == 0)


def test_aborted_block_features_and_zero_reward():
    rep = _rep(status="aborted", qber_x=float("nan"), ec_efficiency=float("nan"))
    x = block_features([rep])
    assert x[11] == 1.0 and x[1] == 5.0 and x[6] == 0.0
    assert reward(rep) == 0.0


def test_reward_is_bits_per_wall_second_without_the_acquire_wait():
    rep = _rep()
    assert wall_seconds(rep) == pytest.approx(0.02 + 0.04 + 0.1)
    assert reward(rep) == pytest.approx(30_000 / 0.16)


def test_channel_rtt_feature_measured_or_estimated():
    assert block_features([_rep(telemetry={"channel_rtt_s": 1e-2})])[8] == pytest.approx(3.0)
    cascade = _rep(method="cascade-biconf", round_trips=50, stage_seconds={"reconcile": 0.05})
    assert block_features([cascade])[8] == pytest.approx(math.log10(1e-3) + 5)
    assert block_features([_rep(telemetry={"channel_rtt_s": 10.0})])[8] == 4.0
