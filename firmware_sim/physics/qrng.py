"""Alice's quantum random number generator on the simulated bench: raw bits from photons.

A weak laser feeds a beam splitter with one single-photon detector behind each
output.  Two raw-bit readouts (config.qrng.raw):
- "path": which detector saw the photon.  A detected photon took output 1 with
  p = r eta_1 / (r eta_1 + (1 - r) eta_0) (split ratio r, efficiencies eta); a
  fraction of the samples are dark counts, which pick either detector at random.
  A splitter far from 50:50 gives a biased source; r = 0 or 1 without dark counts
  a stuck one.
- "time": the parity of the photon's arrival time counted in time_bin_ps bins
  from the previous detection (Poisson arrivals at photon_rate_hz: exponential
  gaps, the parity is 1/2 + O(rate * bin) from fair).
The health tests, min-entropy estimate and extractor are qkdctl.core.randomness;
`choice_source` builds the source SimConfig.alice_choices names.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.config import QrngConfig
from qkdctl.core.errors import QkdInputError
from qkdctl.core.randomness import DetectorQrng, GeneratorSource, OsRandomSource, RandomSource


def path_bits(rng: np.random.Generator, n: int, split_ratio: float, efficiency: tuple[float, float],
              dark_fraction: float) -> np.ndarray:
    """n which-path raw bits (uint8): 1 = the detector behind splitter output 1 clicked."""
    eta0, eta1 = (float(e) for e in efficiency)
    weight = split_ratio * eta1 + (1.0 - split_ratio) * eta0
    if not weight > 0:
        raise QkdInputError("QRNG: no photon can be detected (split ratio and efficiencies give 0)")
    p_one = (1.0 - dark_fraction) * split_ratio * eta1 / weight + dark_fraction * 0.5
    return (rng.random(int(n)) < p_one).astype(np.uint8)


def arrival_bits(rng: np.random.Generator, n: int, photon_rate_hz: float, time_bin_ps: float) -> np.ndarray:
    """n arrival-time raw bits (uint8): parity of the gap to the previous photon in time_bin_ps bins."""
    gap_bins = rng.exponential(1e12 / (photon_rate_hz * time_bin_ps), int(n))
    return (np.floor(gap_bins).astype(np.int64) & 1).astype(np.uint8)


class BeamSplitterQrng:
    """Raw-bit supplier of the simulated QRNG (callable n -> uint8 0/1 array)."""

    def __init__(self, config: QrngConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng

    def __call__(self, n: int) -> np.ndarray:
        """n raw bits of the configured readout."""
        c = self.config
        if c.raw == "path":
            return path_bits(self.rng, n, c.split_ratio, c.efficiency, c.dark_fraction)
        return arrival_bits(self.rng, n, c.photon_rate_hz, c.time_bin_ps)


def choice_source(kind: str, config: QrngConfig, seed: int) -> RandomSource | None:
    """Source of Alice's random words for SimConfig.alice_choices.

    "prng" (the default) returns None: Alice's 32 bits per slot then come from the
    counter generator of the bench seed (physics/alice.py: SplitMix64 of key + slot),
    the fast path; "qrng" is the health-tested QRNG on BeamSplitterQrng photons (raw
    photons and the extractor's seeds from streams 2 and 3 of `seed`, so a simulated run
    is reproducible; on a bench the extractor's seeds come from the OS); "os" is the OS
    CSPRNG.  The last two hand their 64-bit words to alice_choices.
    """
    if kind == "prng":
        return None
    if kind == "os":
        return OsRandomSource()
    if kind == "qrng":
        photons, seeds = (np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(k,))) for k in (2, 3))
        return DetectorQrng(BeamSplitterQrng(config, photons), h_claim=config.h_claim,
                            seed_source=GeneratorSource(seeds))
    raise QkdInputError(f"unknown choice source {kind!r}; known: prng, qrng, os")
