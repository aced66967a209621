"""Pydantic models of lab configs (lab_configs/*.toml) and `load_config`.

A config holding only [link] and [protocol] is valid for planning commands;
commands that touch a bench also need [instruments].  Tables: [link],
[protocol], [instruments.tagger|alice|voa|polarization], [channels], [timing],
[engine], [tuner], [detect], [select], [sim] (the simulated bench's parameters, validated by
firmware_sim when the embedded bench starts).  Unknown top-level tables are
kept, so site-specific tables do not break a config.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Optional

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


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentConfig(_Table):
    """One instrument: which driver, where it answers, and driver options.

    resource: a VISA resource string, a serial device path or pyserial URL,
    host:port, a file path (replay), or "embedded" (the simulated bench that
    `qkdctl run` starts in-process from the [sim] table).
    """

    driver: str = Field(description="driver name, see docs/drivers.md")
    resource: str = "embedded"
    timeout_s: float = Field(default=2.0, gt=0.0, le=600.0)
    options: dict = Field(default_factory=dict)


class InstrumentsConfig(_Table):
    """[instruments.*]: the bench's instruments (tagger and Alice's host are required)."""

    tagger: InstrumentConfig
    alice: InstrumentConfig
    voa: Optional[InstrumentConfig] = None
    polarization: Optional[InstrumentConfig] = None


class ChannelsConfig(_Table):
    """[channels]: tagger channel of each role."""

    sync: int = 0
    H: int = 1
    V: int = 2
    D: int = 3
    A: int = 4

    @model_validator(mode="after")
    def _distinct(self) -> "ChannelsConfig":
        values = list(self.model_dump().values())
        if len(set(values)) != len(values):
            raise ValueError(f"channels must be distinct, got {self.model_dump()}")
        return self


class TimingConfig(_Table):
    """[timing]: pulse clock, sync divider and detection gate (ps)."""

    pulse_rate_hz: float = Field(default=1e9, gt=0.0)
    sync_divider: int = Field(default=1000, ge=1)
    gate_offset_ps: Optional[float] = Field(
        default=None, description="gate centre after the sync (ps); None = found from the first block")
    gate_width_ps: float = Field(default=400.0, gt=0.0)

    @model_validator(mode="after")
    def _gate_fits(self) -> "TimingConfig":
        period_ps = 1e12 / self.pulse_rate_hz
        if self.gate_width_ps > period_ps:
            raise ValueError(f"gate_width_ps {self.gate_width_ps} exceeds the pulse period {period_ps:g} ps")
        return self


class EngineConfig(_Table):
    """[engine]: the block loop."""

    block_seconds: float = Field(default=0.05, gt=0.0, le=3600.0)
    blocks: Optional[int] = Field(default=None, ge=1, description="default number of blocks of `run`")
    queue_depth: int = Field(default=2, ge=1, le=64)
    max_consecutive_aborts: int = Field(default=5, ge=1)
    startup_blocks: int = Field(default=20, ge=1, description="aborted blocks allowed before the first key")
    reconciliation: str = Field(default="auto", description="'auto' or a method name")
    mu_at_0db: float = Field(default=1.0, gt=0.0, description="mean photons/pulse at 0 dB VOA")


class TunerConfig(_Table):
    """[tuner]: which tuners run between blocks (none by default)."""

    polarization: Optional[str] = None
    intensities: Optional[str] = None
    timing: Optional[str] = None
    options: dict = Field(default_factory=dict)
    probe_budget: int = Field(default=8, ge=0, le=1000,
                              description="probe measurements all tuners together may take per block")
    max_probe_s: float = Field(default=0.01, gt=0.0, le=60.0,
                               description="longest probe acquisition (s); longer requests are cut")


class DetectConfig(_Table):
    """[detect]: detectors run on every block (qkdctl.detect.make_detector names)."""

    detectors: list[str] = Field(default_factory=lambda: ["rules"])
    options: dict = Field(default_factory=dict, description="per detector name: its options")


class SelectConfig(_Table):
    """[select]: learned event selection, refitted on past verified blocks (docs/selection.md)."""

    selector: Optional[Literal["optimized_window", "logistic", "gradient_boosting"]] = Field(
        default=None, description="None = keep every gated event (the configured window)")
    refit_every_blocks: int = Field(default=5, ge=1, description="verified blocks between refits")
    history_blocks: int = Field(default=4, ge=1, description="past verified blocks a refit uses")


class ControlConfig(_Table):
    """[control]: a trained adaptive-control policy (docs/control.md) chooses block length,
    reconciliation method and gate width between blocks."""

    policy: str = Field(description="saved policy JSON (path relative to this config file)")
    backend: str = Field(default="aer", description="quantum backend of a 'vqc' policy")
    seed: int = Field(default=0, ge=0, description="simulator seed of the quantum backend")


class LabConfig(BaseModel):
    """A whole lab config.  Unknown top-level tables are kept (extra='allow')."""

    model_config = ConfigDict(extra="allow", frozen=True)

    link: Optional[LinkConfig] = None
    protocol: Optional[ProtocolConfig] = None
    instruments: Optional[InstrumentsConfig] = None
    channels: ChannelsConfig = ChannelsConfig()
    timing: TimingConfig = TimingConfig()
    engine: EngineConfig = EngineConfig()
    tuner: TunerConfig = TunerConfig()
    detect: DetectConfig = DetectConfig()
    select: SelectConfig = SelectConfig()
    sim: dict = Field(default_factory=dict, description="SimConfig fields (firmware_sim)")
    control: Optional[ControlConfig] = None
    _source: str = PrivateAttr(default="config")

    def require_planning(self) -> tuple[LinkConfig, ProtocolConfig]:
        """Return ([link], [protocol]) or raise ConfigError naming the missing table."""
        missing = [name for name in ("link", "protocol") if getattr(self, name) is None]
        if missing:
            raise ConfigError(f"{self._source}: missing table(s) {', '.join('[' + m + ']' for m in missing)}")
        return self.link, self.protocol

    def require_bench(self) -> InstrumentsConfig:
        """Return [instruments] (with [protocol]) or raise ConfigError: commands that touch a bench."""
        if self.protocol is None:
            raise ConfigError(f"{self._source}: missing table [protocol]")
        if self.instruments is None:
            raise ConfigError(f"{self._source}: missing table [instruments] (needed to drive a bench)")
        return self.instruments

    @property
    def source(self) -> str:
        """The file this config came from (for error messages)."""
        return self._source

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
