"""Polarization optics as 2x2 Jones (SU(2)) matrices.

Conventions: Jones vectors in the (H, V) basis; Alice's states are indexed
state = 2*basis + bit: H (Z,0), V (Z,1), D (X,0), A (X,1).  A retarder of
retardance delta with fast axis at angle theta is
    J = R(-theta) diag(exp(-i delta/2), exp(+i delta/2)) R(theta),
with R(theta) the rotation matrix [[cos, sin], [-sin, cos]].  Light passes the
elements in order, so the total matrix is the product right-to-left.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qkdctl.core.errors import QkdInputError

_S = 1.0 / np.sqrt(2.0)
BB84_STATES = np.array([[1, 0], [0, 1], [_S, _S], [_S, -_S]], dtype=np.complex128)
"""Jones vectors of H, V, D, A (index = 2*basis + bit)."""

PAULI = np.array(
    [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128
)

MPC320_PADDLES = ("quarter", "half", "quarter")
"""Thorlabs MPC320 paddle order along the fiber: lambda/4, lambda/2, lambda/4."""
MPC320_MAX_DEG = 170.0
EPC_AXES_DEG = (0.0, 45.0, 0.0, 45.0)
"""Fiber-squeezer axes of an EPC-400-style controller (alternating 0/45 degrees)."""
EPC_MAX_MV = 5000.0


def retarder(delta_rad: float, axis_rad: float) -> np.ndarray:
    """Jones matrix of a linear retarder (retardance delta_rad, fast axis at axis_rad)."""
    c, s = np.cos(axis_rad), np.sin(axis_rad)
    rot = np.array([[c, s], [-s, c]], dtype=np.complex128)
    ret = np.diag([np.exp(-0.5j * delta_rad), np.exp(0.5j * delta_rad)])
    return rot.T @ ret @ rot


def mpc320_unitary(paddles_deg: Sequence[float]) -> np.ndarray:
    """Jones matrix of the MPC320: QWP, HWP, QWP rotated by the paddle angles (degrees)."""
    if len(paddles_deg) != 3:
        raise QkdInputError(f"MPC320 has 3 paddles, got {len(paddles_deg)} angles")
    u = np.eye(2, dtype=np.complex128)
    for kind, deg in zip(MPC320_PADDLES, paddles_deg):
        delta = np.pi / 2 if kind == "quarter" else np.pi
        u = retarder(delta, np.deg2rad(deg)) @ u
    return u


def epc_unitary(
    voltages_mv: Sequence[float], v_pi_mv: float, offsets_rad: Sequence[float] = (0, 0, 0, 0)
) -> np.ndarray:
    """Jones matrix of 4 fiber squeezers at 0/45/0/45 deg, retardance pi*V/V_pi + offset."""
    if len(voltages_mv) != 4 or len(offsets_rad) != 4:
        raise QkdInputError("EPC has 4 channels: need 4 voltages and 4 offsets")
    if v_pi_mv <= 0:
        raise QkdInputError(f"EPC v_pi_mv must be > 0, got {v_pi_mv}")
    u = np.eye(2, dtype=np.complex128)
    for v, off, axis in zip(voltages_mv, offsets_rad, EPC_AXES_DEG):
        u = retarder(np.pi * v / v_pi_mv + off, np.deg2rad(axis)) @ u
    return u


def su2_from_rotation_vector(omega_rad: np.ndarray) -> np.ndarray:
    """exp(-i omega.sigma/2): a rotation of the Poincare sphere by |omega| about omega."""
    omega = np.asarray(omega_rad, dtype=np.float64)
    angle = float(np.linalg.norm(omega))
    if angle == 0.0:
        return np.eye(2, dtype=np.complex128)
    n = omega / angle
    gen = np.tensordot(n, PAULI, axes=1)
    return np.cos(angle / 2) * np.eye(2) - 1j * np.sin(angle / 2) * gen


def random_su2(rng: np.random.Generator) -> np.ndarray:
    """Haar-random SU(2) matrix (normalized Gaussian quaternion)."""
    a, b, c, d = rng.standard_normal(4)
    q = np.array([a, b, c, d]) / np.sqrt(a * a + b * b + c * c + d * d)
    return np.array(
        [[q[0] + 1j * q[3], q[2] + 1j * q[1]], [-q[2] + 1j * q[1], q[0] - 1j * q[3]]],
        dtype=np.complex128,
    )


def drift_step(
    u: np.ndarray,
    dt_s: float,
    rate_rad_per_sqrt_s: float,
    jump_rate_hz: float,
    jump_size_rad: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Advance a fiber's SU(2) by dt_s: Brownian rotation plus Poisson-timed jumps."""
    if rate_rad_per_sqrt_s > 0 and dt_s > 0:
        omega = rng.standard_normal(3) * rate_rad_per_sqrt_s * np.sqrt(dt_s)
        u = su2_from_rotation_vector(omega) @ u
    if jump_rate_hz > 0 and dt_s > 0:
        for _ in range(int(rng.poisson(jump_rate_hz * dt_s))):
            axis = rng.standard_normal(3)
            axis /= np.linalg.norm(axis)
            u = su2_from_rotation_vector(axis * jump_size_rad) @ u
    return u


def detector_probabilities(u_total: np.ndarray, p_bob_z: float) -> np.ndarray:
    """P[state, detector]: where one photon of each BB84 state ends up at Bob.

    Passive basis choice (Z arm with prob p_bob_z), then a PBS per arm (H/V or D/A).
    Rows sum to 1.
    """
    out_states = BB84_STATES @ u_total.T  # row s = U @ state_s
    # clipped: rounding in a product of unitaries can push |<H|psi>|^2 a few ulp above 1
    p_h = np.clip(np.abs(out_states @ BB84_STATES[0].conj()) ** 2, 0.0, 1.0)
    p_d = np.clip(np.abs(out_states @ BB84_STATES[2].conj()) ** 2, 0.0, 1.0)
    probs = np.empty((4, 4), dtype=np.float64)
    probs[:, 0] = p_bob_z * p_h
    probs[:, 1] = p_bob_z * (1.0 - p_h)
    probs[:, 2] = (1.0 - p_bob_z) * p_d
    probs[:, 3] = (1.0 - p_bob_z) * (1.0 - p_d)
    return probs


def basis_error_probabilities(u_total: np.ndarray) -> tuple[float, float]:
    """Optical error probability (e_Z, e_X): a photon prepared in a basis lands on the wrong bit."""
    probs = detector_probabilities(u_total, 0.5) * 2.0
    e_z = 0.5 * (probs[0, 1] + probs[1, 0])
    e_x = 0.5 * (probs[2, 3] + probs[3, 2])
    return float(e_z), float(e_x)


def link_probabilities(u_total: np.ndarray, p_bob_z: float) -> tuple[np.ndarray, float, float]:
    """detector_probabilities(u_total, p_bob_z) and basis_error_probabilities(u_total), bit for bit,
    from one evaluation (the arm weights are exact rescalings of the p_bob_z = 1/2 table)."""
    probs = detector_probabilities(u_total, 0.5) * 2.0
    e_z = 0.5 * (probs[0, 1] + probs[1, 0])
    e_x = 0.5 * (probs[2, 3] + probs[3, 2])
    p_det = probs * np.array([p_bob_z, p_bob_z, 1.0 - p_bob_z, 1.0 - p_bob_z])
    return p_det, float(e_z), float(e_x)
