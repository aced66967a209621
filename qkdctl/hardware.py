"""What the engine needs of a bench, whichever it is: live drivers, replay or a model.

`Hardware.acquire(duration_s)` returns one block of Bob's tags with Alice's
matching record; `apply(params)` sets operating parameters (names as in
`qkdctl.tune.base`); `params()` reads the ones in force.  The live bench is
built from drivers in `qkdctl.wiring`; `ModelHardware` draws blocks from the
analytic link model of `qkdctl.core.linkmodel` (no instruments: for planning,
tests and benchmarks -- it is a model, not the simulator).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.core.linkmodel import LinkModel, generate_block
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock


#: parameters that live in software (the pipeline's gate, the engine's block length in s),
#: accepted by every bench.
SOFTWARE_PARAMS = frozenset({"gate.offset_ps", "gate.width_ps", "block.seconds"})


@dataclass(frozen=True)
class Acquisition:
    """One acquired block: Bob's tags, Alice's record, the parameters in force."""

    block_id: int
    tags: TagBlock
    alice: AliceRecord
    params: Mapping[str, float]


def intensities(params: Mapping[str, float], mu_at_0db: float) -> tuple[float, float, float]:
    """Mean photon numbers of the three intensity classes from the VOA parameters.

    mu_k = mu_at_0db * 10^(-voa.k / 10), or 0 when the channel's output is off
    (voa.on.k == 0).
    """
    missing = [f"voa.{k}" for k in (1, 2, 3) if f"voa.{k}" not in params]
    if missing:
        raise QkdInputError(f"operating parameters lack {missing}")
    return tuple(
        mu_at_0db * 10 ** (-params[f"voa.{k}"] / 10) if params.get(f"voa.on.{k}", 1.0) else 0.0
        for k in (1, 2, 3)
    )


def intensity_params(mu: tuple[float, float, float], mu_at_0db: float) -> dict[str, float]:
    """VOA parameters that realise the intensities mu (0 -> output off at maximum attenuation)."""
    params: dict[str, float] = {}
    for k, m in zip((1, 2, 3), mu):
        if m <= 0:
            params[f"voa.{k}"], params[f"voa.on.{k}"] = 45.0, 0.0
        else:
            att = 10 * math.log10(mu_at_0db / m)
            if not 0.0 <= att <= 45.0:
                raise ConfigError(
                    f"intensity mu{k} = {m} needs {att:.2f} dB of attenuation from mu_at_0db = {mu_at_0db}; "
                    "the VOA allows 0..45 dB")
            params[f"voa.{k}"], params[f"voa.on.{k}"] = att, 1.0
    return params


#: Alice's choice probabilities as operating parameters: P(Z), P(signal), P(decoy);
#: P(vacuum) is the rest.  Bob's basis splitter is a fixed component (not a parameter).
CHOICE_PARAMS = ("alice.p_z", "alice.p_signal", "alice.p_decoy")


def choice_params(p_z: float, p_mu: tuple[float, float, float]) -> dict[str, float]:
    """{"alice.p_z", "alice.p_signal", "alice.p_decoy"} of P(Z) and (p_signal, p_decoy, p_vacuum)."""
    return {"alice.p_z": float(p_z), "alice.p_signal": float(p_mu[0]), "alice.p_decoy": float(p_mu[1])}


def choice_probabilities(params: Mapping[str, float]) -> tuple[float, tuple[float, float, float]] | None:
    """(P(Z), (p_signal, p_decoy, p_vacuum)) from the alice.p_* parameters, None when the bench
    has none; QkdInputError when they are out of range (P(Z) in (0, 1), p >= 0, sum <= 1)."""
    present = [k for k in CHOICE_PARAMS if k in params]
    if not present:
        return None
    if len(present) != len(CHOICE_PARAMS):
        raise QkdInputError(f"choice probabilities need all of {list(CHOICE_PARAMS)}, got {present}")
    p_z, p_s, p_d = (float(params[k]) for k in CHOICE_PARAMS)
    if not 0.0 < p_z < 1.0:
        raise QkdInputError(f"alice.p_z = {p_z} must lie in (0, 1)")
    if not (p_s > 0.0 and p_d >= 0.0 and p_s + p_d <= 1.0 + 1e-12):
        raise QkdInputError(f"alice.p_signal = {p_s}, alice.p_decoy = {p_d}: need p_signal > 0, "
                            "p_decoy >= 0 and p_signal + p_decoy <= 1 (vacuum takes the rest)")
    return p_z, (p_s, p_d, max(0.0, round(1.0 - p_s - p_d, 12)))  # rounded: 1 - 0.2 - 0.5 is 0.3


class Hardware(ABC):
    """A bench seen by the engine."""

    #: SU(2) calibration of the polarization controller (settings -> rotation), if any.
    calibration = None

    @abstractmethod
    def acquire(self, duration_s: float) -> Acquisition:
        """Acquire one block of `duration_s` seconds."""

    @abstractmethod
    def apply(self, params: Mapping[str, float]) -> None:
        """Set operating parameters (unknown names raise QkdInputError)."""

    @abstractmethod
    def params(self) -> dict[str, float]:
        """The operating parameters in force."""

    #: mean photon number per pulse with the VOA at 0 dB (source calibration).
    mu_at_0db: float = 1.0

    def mu(self) -> tuple[float, float, float]:
        """Mean photon numbers (signal, decoy, vacuum) in force."""
        return intensities(self.params(), self.mu_at_0db)

    def close(self) -> None:
        """Release instruments (idempotent)."""

    def __enter__(self) -> "Hardware":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ModelHardware(Hardware):
    """Blocks drawn from the analytic link model (no physics simulator, no drivers).

    The VOA parameters voa.1..3 set the intensities mu_k = mu_at_0db 10^(-att/10);
    alice.p_z, alice.p_signal, alice.p_decoy set the model's choice probabilities (the
    link model splits Bob's bases with Alice's P(Z): there Bob's ratio follows it).
    """

    def __init__(self, model: LinkModel, rng: np.random.Generator, pulse_rate_hz: float = 1e9,
                 sync_divider: int = 100, gate_offset_ps: float = 300.0, mu_at_0db: float = 1.0) -> None:
        self.model = model
        self.rng = rng
        self.pulse_period_ps = 1e12 / pulse_rate_hz
        self.sync_divider = sync_divider
        self.gate_offset_ps = gate_offset_ps
        self.mu_at_0db = mu_at_0db
        self._params = intensity_params(model.intensities, mu_at_0db)
        self._params.update(choice_params(model.key_basis_prob, model.intensity_probs))
        self._next_slot = 0
        self._block_id = 0

    def params(self) -> dict[str, float]:
        return dict(self._params)

    def apply(self, params: Mapping[str, float]) -> None:
        unknown = set(params) - set(self._params) - SOFTWARE_PARAMS
        if unknown:
            raise QkdInputError(f"model bench has no parameters {sorted(unknown)}")
        merged = {**self._params, **{k: float(v) for k, v in params.items()}}
        p_z, p_mu = choice_probabilities(merged)
        self._params = merged
        self.model = replace(self.model, intensities=self.mu(), intensity_probs=p_mu, key_basis_prob=p_z)

    def acquire(self, duration_s: float) -> Acquisition:
        n = int(round(duration_s * 1e12 / self.pulse_period_ps))
        n -= n % self.sync_divider
        alice, tags = generate_block(self.model, n, self.rng, pulse_period_ps=self.pulse_period_ps,
                                     gate_offset_ps=self.gate_offset_ps,
                                     sync_divider=self.sync_divider, first_slot=self._next_slot)
        acq = Acquisition(self._block_id, tags, alice, self.params())
        self._next_slot += n
        self._block_id += 1
        return acq
