"""Polarization optics from first principles, fiber drift, source intensities, PNS tuning."""

import math

import numpy as np
import pytest

from firmware_sim.config import FiberConfig
from firmware_sim.physics import polarization as pol
from firmware_sim.physics.eve import pns_settings
from firmware_sim.physics.fiber import FiberState, nominal_delay_ps, transmission
from firmware_sim.physics.source import intensity_mu
from qkdctl.core.errors import QkdInputError

H, V, D, A = pol.BB84_STATES


def _same_up_to_phase(u, w):
    k = np.trace(w.conj().T @ u) / 2
    return abs(abs(k) - 1) < 1e-12 and np.allclose(u, k * w)


def test_waveplates():
    hwp = pol.retarder(math.pi, math.radians(22.5))
    assert abs(abs(np.vdot(D, hwp @ H)) - 1) < 1e-12  # HWP at 22.5 deg: H -> D
    qwp = pol.retarder(math.pi / 2, math.radians(45))
    out = qwp @ H  # QWP at 45 deg: H -> circular, equal H/V and D/A weights
    assert abs(abs(out[0]) ** 2 - 0.5) < 1e-12 and abs(abs(np.vdot(D, out)) ** 2 - 0.5) < 1e-12
    for delta, axis in ((0.3, 0.1), (2.0, -1.0)):
        u = pol.retarder(delta, axis)
        assert np.allclose(u.conj().T @ u, np.eye(2))
        assert abs(np.linalg.det(u) - 1) < 1e-12


def test_mpc320_zero_is_identity_and_paddles_rotate():
    assert _same_up_to_phase(pol.mpc320_unitary([0, 0, 0]), np.eye(2))
    # middle (half-wave) paddle at 45 deg with quarter-wave paddles at 0: H -> V
    u = pol.mpc320_unitary([0, 45, 0])
    assert abs(abs(np.vdot(V, u @ H)) - 1) < 1e-12
    with pytest.raises(QkdInputError, match="3 paddles"):
        pol.mpc320_unitary([0, 0])


def test_epc_retardance_linear_in_voltage():
    v_pi = 2500.0
    assert _same_up_to_phase(pol.epc_unitary([0, 0, 0, 0], v_pi), np.eye(2))
    # the 45-deg squeezer at V_pi is a half-wave plate at 45 deg: H -> V
    u = pol.epc_unitary([0, v_pi, 0, 0], v_pi)
    assert abs(abs(np.vdot(V, u @ H)) - 1) < 1e-12
    # half of V_pi on the 45-deg squeezer: H -> equal parts H and V
    u = pol.epc_unitary([0, v_pi / 2, 0, 0], v_pi)
    assert abs(abs(u @ H)[0] ** 2 - 0.5) < 1e-12
    # the 0-deg squeezer leaves H alone at any voltage
    u = pol.epc_unitary([1234.0, 0, 0, 0], v_pi)
    assert abs(abs(np.vdot(H, u @ H)) - 1) < 1e-12


def test_detector_probabilities_and_errors(rng):
    p = pol.detector_probabilities(np.eye(2), 0.5)
    assert np.allclose(p.sum(axis=1), 1)
    assert np.allclose(p[0], [0.5, 0, 0.25, 0.25])
    assert np.allclose(p[3], [0.25, 0.25, 0, 0.5])
    for _ in range(5):
        u = pol.random_su2(rng)
        assert np.allclose(pol.detector_probabilities(u, 0.3).sum(axis=1), 1)
    # a rotation by theta about the circular axis misaligns both bases by sin^2(theta/2)
    theta = 0.4
    e_z, e_x = pol.basis_error_probabilities(pol.su2_from_rotation_vector([0, 0, theta]))
    assert e_z == pytest.approx(0.0, abs=1e-12)  # S3 here is the H/V axis (sigma_z)
    e_z, e_x = pol.basis_error_probabilities(pol.su2_from_rotation_vector([0, theta, 0]))
    assert e_z == pytest.approx(math.sin(theta / 2) ** 2) and e_x == pytest.approx(math.sin(theta / 2) ** 2)


def test_fiber_drift_statistics():
    cfg = FiberConfig(drift_rad_per_sqrt_s=0.2, delay_drift_ps_per_s=50.0, length_km=10)
    errs = []
    for seed in range(200):
        f = FiberState(cfg, np.random.default_rng(seed))
        for _ in range(10):
            f.step(0.1)
        errs.append(pol.basis_error_probabilities(f.rotation)[0])
    # rotational diffusion of the Stokes vector (D = sigma^2/2): E[s.s0] = exp(-sigma^2 t),
    # so the mean Z error after t = 1 s is (1 - exp(-sigma^2)) / 2
    expected = (1 - math.exp(-(0.2**2))) / 2
    assert abs(np.mean(errs) - expected) < 0.25 * expected
    f = FiberState(cfg, np.random.default_rng(0))
    d0 = f.delay_ps
    f.step(2.0)
    assert f.delay_ps - d0 == pytest.approx(100.0)
    assert nominal_delay_ps(cfg) == pytest.approx(10e3 * 1.468 / 299792458 * 1e12)
    assert transmission(cfg) == pytest.approx(10 ** -0.2)


def test_fiber_jumps(rng):
    cfg = FiberConfig(jump_rate_hz=1.0, jump_size_rad=math.pi)
    f = FiberState(cfg, rng)
    f.step(1e-9)
    assert _same_up_to_phase(f.rotation, np.eye(2))
    moved = 0
    for _ in range(20):
        f.step(1.0)
        moved += not _same_up_to_phase(f.rotation, np.eye(2))
    assert moved > 5


def test_intensity_mu():
    mu = intensity_mu(1.0, np.array([3.0, 10.0, 0.0, 0.0]), np.array([True, True, False, True]),
                      np.full(4, 1550e-9), 1550e-9, 0.01)
    assert mu == pytest.approx([10**-0.3, 0.1, 0.0])
    mu = intensity_mu(1.0, np.zeros(4), np.ones(4, bool), np.full(4, 1560e-9), 1550e-9, 0.1)
    assert mu[0] == pytest.approx(10**-0.1)  # 10 nm mismatch x 0.1 dB/nm


def test_pns_settings_match_gain():
    mu, t_link, t_bob, eta = 0.5, 10 ** (-5.0), 0.8, 0.5
    block, fwd = pns_settings(mu, t_link, t_bob, eta)
    # long link: multi-photon pulses alone exceed the honest gain -> singles all blocked
    assert block == 1.0 and 0 < fwd < 1
    y = t_bob * eta * fwd
    gain = sum(math.exp(-mu) * mu**n / math.factorial(n) * (1 - (1 - y) ** (n - 1)) for n in range(2, 40))
    assert gain == pytest.approx(-math.expm1(-mu * t_link * eta), rel=1e-6)
    block, fwd = pns_settings(mu, 10 ** (-0.5), t_bob, eta)
    assert fwd == 1.0 and 0 <= block < 1


def test_link_probabilities_equal_the_separate_functions_bit_for_bit(rng):
    for p_bob_z in (0.5, 0.7, 0.0, 1.0, 0.123):
        u = pol.random_su2(rng)
        p_det, e_z, e_x = pol.link_probabilities(u, p_bob_z)
        assert np.array_equal(p_det, pol.detector_probabilities(u, p_bob_z))
        assert (e_z, e_x) == pol.basis_error_probabilities(u)
