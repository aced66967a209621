"""Polarization geometry for the compensation tuners: click matrix -> Bloch vectors -> SU(2).

Conventions (the same as drivers.polarization.calibration and firmware_sim):
Jones vectors in the (H, V) basis; a state psi has the Bloch (Stokes) vector
b = (<sigma_x>, <sigma_y>, <sigma_z>), so H = +z, V = -z, D = +x, A = -x and the
circular states are +-y.  An SU(2) matrix U acts on Bloch vectors as the rotation
O(U) with U (n.sigma) U^dagger = (O n).sigma; U = exp(-i theta n.sigma / 2) is the
rotation by theta about n.

BB84 detectors measure only the z (H/V arm) and x (D/A arm) components of the
received states: docs/qml.md explains how the missing y components are recovered
and the mirror ambiguity that remains.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from qkdctl.core.errors import QkdInputError

PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)
"""sigma_x, sigma_y, sigma_z."""

MIRROR = np.diag([1.0, -1.0, 1.0])
"""Reflection y -> -y: the symmetry BB84 click statistics cannot see."""


class ControllerCalibration(Protocol):
    """What a compensation tuner needs of a polarization controller's calibration.

    drivers.polarization.calibration.Calibration satisfies it (tuners never import drivers).
    """

    n_settings: int

    def rotation(self, settings: Sequence[float]) -> np.ndarray:
        """2x2 SU(2) Jones matrix realised by `settings` (controller units)."""

    def settings_for(self, target: np.ndarray, *, start: Sequence[float] | None = None):
        """InverseResult(settings, fidelity) of the settings best realising `target`."""


def su2_fidelity(u: np.ndarray, v: np.ndarray) -> float:
    """|tr(u^dagger v)| / 2: 1 iff u and v are the same rotation (up to global phase)."""
    return float(abs(np.trace(np.conj(u).T @ v)) / 2.0)


def su2_from_rotation(rot: Rotation) -> np.ndarray:
    """SU(2) matrix exp(-i theta n.sigma/2) of a Bloch-sphere rotation (theta n = rot.as_rotvec())."""
    omega = rot.as_rotvec()
    theta = float(np.linalg.norm(omega))
    if theta == 0.0:
        return np.eye(2, dtype=complex)
    gen = np.tensordot(omega / theta, PAULI, axes=1)
    return np.cos(theta / 2) * np.eye(2) - 1j * np.sin(theta / 2) * gen


def so3_from_su2(u: np.ndarray) -> np.ndarray:
    """3x3 rotation O of the Bloch sphere with O[k, j] = tr(sigma_k U sigma_j U^dagger) / 2."""
    u = np.asarray(u, dtype=complex)
    ud = np.conj(u).T
    return np.array([[0.5 * np.trace(PAULI[k] @ u @ PAULI[j] @ ud).real for j in range(3)]
                     for k in range(3)])


def _check_matrix(click_matrix: object) -> np.ndarray:
    c = np.asarray(click_matrix, dtype=float)
    if c.shape != (4, 4):
        raise QkdInputError(f"click_matrix must be 4x4 (prepared H,V,D,A x detector H,V,D,A), got {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise QkdInputError("click_matrix must hold finite non-negative counts")
    return c


def _contrast(plus: float, minus: float) -> float:
    total = plus + minus
    return (plus - minus) / total if total > 0 else 0.0


def measured_components(click_matrix: object) -> tuple[np.ndarray, np.ndarray, int]:
    """Measured (x, z) Bloch components of the received H and D states, and the fewest clicks.

    H's image is estimated from both prepared H (row 0) and V (row 1, whose image is
    the antipode), D's from D (row 2) and A (row 3): z from the H/V detectors, x from
    the D/A detectors.  Returns (xz_H, xz_D, min_clicks) with min_clicks the smallest
    count behind any of the four contrasts.
    """
    c = _check_matrix(click_matrix)
    out = []
    sums = []
    for row_p, row_m in ((0, 1), (2, 3)):
        z = _contrast(c[row_p, 0] + c[row_m, 1], c[row_p, 1] + c[row_m, 0])
        x = _contrast(c[row_p, 2] + c[row_m, 3], c[row_p, 3] + c[row_m, 2])
        out.append(np.array([x, z]))
        sums += [c[[row_p, row_m]][:, :2].sum(), c[[row_p, row_m]][:, 2:].sum()]
    return out[0], out[1], int(min(sums))


def optical_qber(click_matrix: object) -> tuple[float, float]:
    """(e_Z, e_X): wrong-detector fraction in the matching arm, from the click matrix."""
    c = _check_matrix(click_matrix)
    zz = c[0, 0] + c[0, 1] + c[1, 0] + c[1, 1]
    xx = c[2, 2] + c[2, 3] + c[3, 2] + c[3, 3]
    e_z = (c[0, 1] + c[1, 0]) / zz if zz > 0 else float("nan")
    e_x = (c[2, 3] + c[3, 2]) / xx if xx > 0 else float("nan")
    return float(e_z), float(e_x)


def received_rotation_candidates(click_matrix: object) -> tuple[np.ndarray, np.ndarray]:
    """The two SU(2) rotations (channel + controller) consistent with the click matrix.

    Model: the received images of H and D are v * O z and v * O x, with O a rotation
    and v <= 1 a common visibility (dark counts, multi-photon double clicks shrink
    both alike).  The four measured numbers fix O up to the mirror and v: with
    a = x_H^2 + z_H^2, d = x_D^2 + z_D^2, p = x_H x_D + z_H z_D, unit length and
    orthogonality give y_H^2 = w - a, y_D^2 = w - d, y_H y_D = -p, so w = v^2 is the
    larger root of (w - a)(w - d) = p^2.  The global sign of (y_H, y_D) is invisible
    to BB84 detectors: O and M O M (M: y -> -y) give identical click statistics.
    Each candidate is the least-squares rotation (Rotation.align_vectors) sending
    z -> b_H / v and x -> b_D / v.
    """
    (x_h, z_h), (x_d, z_d), _ = measured_components(click_matrix)
    a, d, p = x_h**2 + z_h**2, x_d**2 + z_d**2, x_h * x_d + z_h * z_d
    w = 0.5 * (a + d + np.sqrt((a - d) ** 2 + 4.0 * p**2))
    if not w > 0:
        raise QkdInputError("click matrix carries no polarization contrast (all components zero)")
    y_h = np.sqrt(max(0.0, w - a))
    y_d = np.sqrt(max(0.0, w - d)) * (-1.0 if p > 0 else 1.0)
    sent = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    out = []
    for sign in (1.0, -1.0):
        got = np.array([[x_h, sign * y_h, z_h], [x_d, sign * y_d, z_d]]) / np.sqrt(w)
        rot, _ = Rotation.align_vectors(got, sent)
        out.append(su2_from_rotation(rot))
    return out[0], out[1]


def visibility(click_matrix: object) -> float:
    """Common length v of the received Bloch vectors (1 = pure states), see the candidates' model."""
    (x_h, z_h), (x_d, z_d), _ = measured_components(click_matrix)
    a, d, p = x_h**2 + z_h**2, x_d**2 + z_d**2, x_h * x_d + z_h * z_d
    return float(np.sqrt(0.5 * (a + d + np.sqrt((a - d) ** 2 + 4.0 * p**2))))


def component_sigmas(click_matrix: object) -> np.ndarray:
    """Binomial standard errors of (x_H, z_H, x_D, z_D) of `measured_components`.

    A contrast c = (P - M) / (P + M) of N = P + M clicks has variance (1 - c^2) / N;
    a contrast of zero clicks gets sigma 1 (no information).  1 - c^2 is floored at
    1 / N so a perfect contrast still carries one count's worth of uncertainty.
    """
    c = _check_matrix(click_matrix)
    (x_h, z_h), (x_d, z_d), _ = measured_components(c)
    out = []
    for (row_p, row_m), (xv, zv) in (((0, 1), (x_h, z_h)), ((2, 3), (x_d, z_d))):
        rows = c[[row_p, row_m]]
        for n, val in ((rows[:, 2:].sum(), xv), (rows[:, :2].sum(), zv)):
            out.append(1.0 if n <= 0 else np.sqrt(max(1.0 - val * val, 1.0 / n) / n))
    return np.array(out)


def predicted_components(total: np.ndarray) -> np.ndarray:
    """(x_H, z_H, x_D, z_D) of pure states through the total rotation `total` (SU(2))."""
    o = so3_from_su2(total)
    return np.array([o[0, 2], o[2, 2], o[0, 0], o[2, 0]])


def chi2_given_rotation(measured: np.ndarray, sigma: np.ndarray, total: np.ndarray) -> float:
    """chi^2 of measured (x_H, z_H, x_D, z_D) against v * predicted(total), v fitted.

    v (common visibility) is the weighted least-squares factor; under the hypothesis
    that `total` is the true rotation the value is ~ chi^2 with 3 degrees of freedom.
    """
    pred = predicted_components(total)
    w = 1.0 / np.asarray(sigma) ** 2
    den = float(np.sum(w * pred * pred))
    v = float(np.sum(w * measured * pred)) / den if den > 0 else 0.0
    return float(np.sum(w * (measured - v * pred) ** 2))
