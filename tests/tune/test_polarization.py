"""Bloch geometry of the compensation tuners, against the simulator's optics."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from drivers.polarization.calibration import PaddleCalibration, SqueezerCalibration
from firmware_sim.physics.polarization import (
    detector_probabilities,
    epc_unitary,
    mpc320_unitary,
    random_su2,
    su2_from_rotation_vector,
)
from qkdctl.core.errors import QkdInputError
from qkdctl.tune.polarization import (
    MIRROR,
    measured_components,
    optical_qber,
    received_rotation_candidates,
    so3_from_su2,
    su2_fidelity,
    su2_from_rotation,
    visibility,
)


def expected_clicks(u: np.ndarray, n: float = 1e6, visibility_: float = 1.0) -> np.ndarray:
    """Noise-free click matrix of the rotation u, depolarized to the given visibility."""
    p = detector_probabilities(u, 0.5)
    p = visibility_ * p + (1 - visibility_) * 0.25
    return p * n


def test_su2_matches_simulator_convention(rng):
    for _ in range(5):
        omega = rng.normal(size=3)
        u = su2_from_rotation(Rotation.from_rotvec(omega))
        assert su2_fidelity(u, su2_from_rotation_vector(omega)) == pytest.approx(1.0, abs=1e-12)
        assert np.allclose(so3_from_su2(u), Rotation.from_rotvec(omega).as_matrix(), atol=1e-12)


def test_hand_written_click_matrix():
    # identity channel: H -> H detector, D -> D detector; the other arm is 50/50
    cm = [[100, 0, 50, 50], [0, 100, 50, 50], [50, 50, 100, 0], [50, 50, 0, 100]]
    xz_h, xz_d, n_min = measured_components(cm)
    assert np.allclose(xz_h, [0, 1]) and np.allclose(xz_d, [1, 0]) and n_min == 200
    assert optical_qber(cm) == (0.0, 0.0)
    t1, t2 = received_rotation_candidates(cm)
    assert su2_fidelity(t1, np.eye(2)) == pytest.approx(1.0) and su2_fidelity(t2, np.eye(2)) == pytest.approx(1.0)


@pytest.mark.parametrize("vis", [1.0, 0.97])
def test_candidates_contain_truth_and_its_mirror(rng, vis):
    for _ in range(10):
        u = random_su2(rng)
        cm = expected_clicks(u, visibility_=vis)
        cands = received_rotation_candidates(cm)
        fids = sorted(su2_fidelity(c, u) for c in cands)
        assert fids[1] == pytest.approx(1.0, abs=1e-9)
        assert visibility(cm) == pytest.approx(vis, abs=1e-9)
        # the other candidate is the mirror image M O M: same click statistics
        o = so3_from_su2(u)
        assert any(np.allclose(so3_from_su2(c), MIRROR @ o @ MIRROR, atol=1e-6) for c in cands)
        assert np.allclose(expected_clicks(cands[0]), expected_clicks(cands[1]), atol=1e-6)


def test_bad_click_matrix_is_named():
    with pytest.raises(QkdInputError, match="4x4"):
        measured_components(np.zeros((3, 4)))
    with pytest.raises(QkdInputError, match="non-negative"):
        optical_qber(-np.ones((4, 4)))
    with pytest.raises(QkdInputError, match="no polarization contrast"):
        received_rotation_candidates(np.ones((4, 4)))


def test_driver_calibrations_agree_with_simulator(rng):
    """The drivers' calibration and the simulator's controller model (two authors) agree."""
    paddles, epc = PaddleCalibration(), SqueezerCalibration(v_pi_mv=(2500.0,) * 4)
    for _ in range(20):
        deg = rng.uniform(0, 170, 3)
        mv = rng.uniform(-5000, 5000, 4)
        assert np.allclose(paddles.rotation(deg), mpc320_unitary(deg), atol=1e-12)
        assert np.allclose(epc.rotation(mv), epc_unitary(mv, 2500.0), atol=1e-12)
