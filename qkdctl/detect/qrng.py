"""A bench's QRNG fed by its own detector clicks: raw bits for qkdctl.core.randomness.

The randomness-source interface, the SP 800-90B health tests, the min-entropy
estimate and the Toeplitz extractor are pure computation in
`qkdctl.core.randomness` (the simulated bench's QRNG uses the same code); wrap a
supplier of `detector_raw_bits` in `qkdctl.core.randomness.DetectorQrng`.
"""

from __future__ import annotations

import numpy as np

from qkdctl.core.errors import QkdInputError


def detector_raw_bits(roles: np.ndarray) -> np.ndarray:
    """Raw QRNG bits from clicked detector roles (H/V/D/A = 0..3): which detector of its pair clicked."""
    r = np.asarray(roles)
    if r.size and (r.min() < 0 or r.max() > 3):
        raise QkdInputError("detector roles must be 0..3")
    return (r & 1).astype(np.uint8)
