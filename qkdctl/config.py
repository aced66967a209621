"""Pydantic models of lab configs (lab_configs/*.toml) and `load_config`.

A config holding only [link] and [protocol] is valid for planning commands; other
tables ([instruments], [sim], [engine], [tuner], ...) are accepted and kept as
plain dicts until their own models are added here as typed optional fields.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from qkdctl.core.errors import ConfigError
from qkdctl.core.keyrate import check_decoy_settings
from qkdctl.core.linkmodel import LinkModel

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
OpenProbability = Annotated[float, Field(gt=0.0, lt=1.0)]


class LinkConfig(BaseModel):
    """[link]: fiber and detectors (probabilities per pulse slot and detector)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fiber_loss_db_per_km: float = Field(ge=0.0, description="fiber attenuation, dB/km")
    detector_efficiency: float = Field(gt=0.0, le=1.0, description="detection efficiency")
    dark_count_prob: float = Field(ge=0.0, lt=1.0, description="dark count per pulse per detector")
    afterpulse_prob: float = Field(ge=0.0, lt=1.0, description="afterpulse probability per click")
    misalignment: float = Field(ge=0.0, le=0.5, description="optical error probability e_mis")
    distance_km: Optional[float] = Field(default=None, ge=0.0, description="fiber length, km")


class ProtocolConfig(BaseModel):
    """[protocol]: decoy-state BB84 settings (Lim et al. 2014 notation in docs/keyrate.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intensities: tuple[float, float, float] = Field(description="mu1 > mu2 + mu3, mu2 > mu3 >= 0")
    intensity_probs: tuple[OpenProbability, OpenProbability, OpenProbability]
    key_basis_prob: OpenProbability = Field(description="probability of the Z (key) basis")
    block_size: int = Field(gt=0, description="key-basis detections per block (Lim's n_X)")
    eps_sec: OpenProbability
    eps_cor: OpenProbability
    ec_efficiency: float = Field(ge=1.0, description="leak_EC / (n h(QBER))")
    qber_abort_threshold: float = Field(default=0.11, gt=0.0, le=0.5)

    @field_validator("intensities")
    @classmethod
    def _finite(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(x) for x in v):
            raise ValueError("intensities must be finite numbers")
        return v

    @model_validator(mode="after")
    def _decoy_constraints(self) -> "ProtocolConfig":
        check_decoy_settings(self.intensities, self.intensity_probs)
        return self


class LabConfig(BaseModel):
    """A whole lab config.  Unknown top-level tables are kept (extra='allow')."""

    model_config = ConfigDict(extra="allow", frozen=True)

    link: Optional[LinkConfig] = None
    protocol: Optional[ProtocolConfig] = None
    _source: str = PrivateAttr(default="config")

    def require_planning(self) -> tuple[LinkConfig, ProtocolConfig]:
        """Return ([link], [protocol]) or raise ConfigError naming the missing table."""
        missing = [name for name in ("link", "protocol") if getattr(self, name) is None]
        if missing:
            raise ConfigError(f"{self._source}: missing table(s) {', '.join('[' + m + ']' for m in missing)}")
        return self.link, self.protocol

    def link_model(self, distance_km: Optional[float] = None) -> LinkModel:
        """The core LinkModel of [link] + [protocol] at distance_km (default [link].distance_km or 0)."""
        link, proto = self.require_planning()
        d = distance_km if distance_km is not None else (link.distance_km or 0.0)
        return LinkModel(
            fiber_loss_db_per_km=link.fiber_loss_db_per_km,
            detector_efficiency=link.detector_efficiency,
            dark_count_prob=link.dark_count_prob,
            afterpulse_prob=link.afterpulse_prob,
            misalignment=link.misalignment,
            intensities=proto.intensities,
            intensity_probs=proto.intensity_probs,
            key_basis_prob=proto.key_basis_prob,
            distance_km=d,
        )


def _describe(err: dict) -> str:
    """One line for one pydantic error: key, bad value, what is allowed."""
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "missing":
        return f"key {loc} is missing (required)"
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc} = {err.get('input')!r} (not allowed here)"
    value = err.get("input")
    if isinstance(value, dict):
        return f"[{loc}]: {msg}" if loc else msg
    return f"key {loc} = {value!r}: {msg}"


def parse_config(data: dict, source: str = "config") -> LabConfig:
    """Validate a parsed TOML dict; raise ConfigError with one clear line."""
    try:
        cfg = LabConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _describe(errors[0])
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {first}{more}") from None
    cfg._source = source
    return cfg


def load_config(path: str | Path) -> LabConfig:
    """Read and validate a lab config TOML file; any problem raises ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{p}: permission denied") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse_config(data, str(p))
