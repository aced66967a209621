"""SU(2) calibrations: unitarity, hand-checked Jones matrices, consistency of the inverse."""

import numpy as np
import pytest

from drivers.polarization.calibration import (
    PaddleCalibration, SqueezerCalibration, check_su2, fidelity, retarder,
)
from qkdctl.core.errors import QkdInputError

H = np.array([1, 0], dtype=complex)
V = np.array([0, 1], dtype=complex)
D = np.array([1, 1], dtype=complex) / np.sqrt(2)
R = np.array([1, -1j], dtype=complex) / np.sqrt(2)
L = np.array([1, 1j], dtype=complex) / np.sqrt(2)


def same_state(a, b):
    return abs(np.vdot(a, b)) == pytest.approx(1.0)


def test_half_wave_plate_at_45_deg_swaps_h_and_v():
    hwp = retarder(np.pi, np.pi / 4)
    assert same_state(hwp @ H, V)
    assert same_state(hwp @ V, H)
    assert same_state(hwp @ D, D)


def test_quarter_wave_plate_at_45_deg_makes_h_circular():
    qwp = retarder(np.pi / 2, np.pi / 4)
    out = qwp @ H
    assert same_state(out, R) or same_state(out, L)
    assert abs(out[0]) == pytest.approx(abs(out[1]))


def test_retarder_along_h_leaves_h_and_v():
    plate = retarder(1.234, 0.0)
    assert same_state(plate @ H, H)
    assert same_state(plate @ V, V)
    assert not same_state(plate @ D, D)


def test_zero_voltage_squeezers_are_identity():
    u = SqueezerCalibration().rotation([0, 0, 0, 0])
    assert fidelity(u, np.eye(2)) == pytest.approx(1.0)


def test_v_pi_on_45_deg_squeezer_swaps_h_and_v():
    u = SqueezerCalibration(v_pi_mv=(2000.0,) * 4).rotation([0, 2000, 0, 0])
    assert same_state(u @ H, V)


@pytest.mark.parametrize("cal", [PaddleCalibration(), SqueezerCalibration()])
def test_rotations_are_su2(cal, rng):
    for _ in range(20):
        lo, hi = np.array(cal.bounds).T
        u = cal.rotation(rng.uniform(lo, hi))
        assert np.allclose(u.conj().T @ u, np.eye(2))
        assert np.linalg.det(u) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "cal",
    [PaddleCalibration(angle_offsets_deg=(3.0, -2.0, 5.0), retardances_rad=(1.5, 3.2, 1.6)),
     SqueezerCalibration(v_pi_mv=(2100.0, 2600.0, 2400.0, 2300.0))],
)
def test_inverse_recovers_a_rotation(cal, rng):
    lo, hi = np.array(cal.bounds).T
    for _ in range(4):
        settings = rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
        target = cal.rotation(settings)
        found = cal.settings_for(target)
        assert found.fidelity > 1 - 1e-6
        assert fidelity(cal.rotation(found.settings), target) == pytest.approx(found.fidelity)
        assert all(b[0] <= s <= b[1] for s, b in zip(found.settings, cal.bounds))


def test_inverse_with_global_phase_and_rng_starts(rng):
    cal = PaddleCalibration()
    target = -1j * cal.rotation([40.0, 100.0, 20.0])
    found = cal.settings_for(target, rng=rng, n_starts=4, start=[45.0, 95.0, 25.0])
    assert found.fidelity > 1 - 1e-6


def test_bad_inputs():
    with pytest.raises(QkdInputError, match="not unitary"):
        check_su2(np.ones((2, 2)))
    with pytest.raises(QkdInputError, match="shape"):
        check_su2(np.eye(3))
    with pytest.raises(QkdInputError, match="2 settings given; 3 needed"):
        PaddleCalibration().rotation([1.0, 2.0])
    with pytest.raises(QkdInputError, match="v_pi_mv"):
        SqueezerCalibration(v_pi_mv=(0.0, 1.0, 1.0, 1.0))
    with pytest.raises(QkdInputError, match="n_starts"):
        PaddleCalibration().settings_for(np.eye(2), n_starts=0)
