"""Apply a selector to a block between sifting and parameter estimation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qkdctl.core.sift import SiftedKey, SiftResult
from qkdctl.core.tags import Gated
from qkdctl.select.features import event_features
from qkdctl.select.selectors import Selector


def _subset(key: SiftedKey, keep: np.ndarray) -> SiftedKey:
    return SiftedKey(key.slot[keep], key.alice_bit[keep], key.bob_bit[keep], key.intensity[keep])


def apply_selection(selector: Selector, gated: Gated, sifted: SiftResult) -> tuple[SiftResult, dict]:
    """Sifted events the selector keeps (both bases, same rule) and the record of it.

    The selector sees only public features (never a bit); the record holds its name,
    parameters and the kept/sifted counts per basis and intensity.
    """
    fz, fx = event_features(gated, sifted)
    keep_z, keep_x = selector.keep(fz), selector.keep(fx)
    out = replace(sifted, z=_subset(sifted.z, keep_z), x=_subset(sifted.x, keep_x))
    record = {
        "selector": selector.name,
        "params": selector.describe(),
        "sifted": [np.bincount(k.intensity, minlength=3).tolist() for k in (sifted.z, sifted.x)],
        "kept": [np.bincount(k.intensity, minlength=3).tolist() for k in (out.z, out.x)],
    }
    return out, record
