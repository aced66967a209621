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

    The VOA parameters voa.1..3 set the intensities mu_k = mu_at_0db 10^(-att/10).
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
        self._next_slot = 0
        self._block_id = 0

    def params(self) -> dict[str, float]:
        return dict(self._params)

    def apply(self, params: Mapping[str, float]) -> None:
        unknown = set(params) - set(self._params) - SOFTWARE_PARAMS
        if unknown:
            raise QkdInputError(f"model bench has no parameters {sorted(unknown)}")
        self._params.update({k: float(v) for k, v in params.items()})
        self.model = replace(self.model, intensities=self.mu())

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
