"""Alice's source: mean photon numbers of the three intensity classes from the VOA state."""

from __future__ import annotations

import numpy as np

from qkdctl.core.constants import N_INTENSITIES


def intensity_mu(
    mu_max: float,
    attenuation_db: np.ndarray,
    output_enabled: np.ndarray,
    voa_wavelength_m: np.ndarray,
    source_wavelength_m: float,
    wdl_db_per_nm: float,
) -> np.ndarray:
    """mu per class (signal, decoy, vacuum) from VOA channels 1..3.

    mu_k = mu_max * 10**(-A_k/10), A_k = set attenuation + wdl * |lambda_set - lambda_source| (nm);
    a disabled output (shutter closed) gives mu_k = 0.
    """
    mu = np.zeros(N_INTENSITIES, dtype=np.float64)
    for k in range(N_INTENSITIES):
        if not output_enabled[k]:
            continue
        mismatch_nm = abs(voa_wavelength_m[k] - source_wavelength_m) * 1e9
        mu[k] = mu_max * 10.0 ** (-(attenuation_db[k] + wdl_db_per_nm * mismatch_nm) / 10.0)
    return mu
