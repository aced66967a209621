"""Parameters of the simulated bench (pydantic models, validated on construction).

Units are in the field names: `_hz`, `_ps`, `_db`, `_km`, `_m`, `_rad`, `_s`, `_v`, `_mv`.
Bad values raise `qkdctl.core.errors.ConfigError` through `SimConfig.build(...)`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """Alice: weak coherent pulses, three intensity classes set by the VOA channels 1..3."""

    pulse_rate_hz: float = Field(1.0e9, ge=1.0e8, le=2.5e9)
    mu_max: float = Field(1.0, gt=0.0, le=100.0, description="mean photon number at 0 dB VOA")
    p_z: float = Field(0.5, ge=0.0, le=1.0, description="probability Alice prepares in Z")
    p_bit_one: float = Field(0.5, ge=0.0, le=1.0)
    p_intensity: tuple[float, float, float] = (0.7, 0.2, 0.1)
    sync_divider: int = Field(1000, ge=1, le=1 << 24)
    attenuation_db: tuple[float, float, float, float] = (3.0103, 10.0, 45.0, 45.0)
    output_enabled: tuple[bool, bool, bool, bool] = (True, True, False, False)
    wavelength_m: float = Field(1550e-9, ge=1260e-9, le=1640e-9)
    voa_max_attenuation_db: float = Field(45.0, gt=0.0)
    voa_wdl_db_per_nm: float = Field(0.002, ge=0.0, description="VOA error per nm of wavelength mismatch")

    @field_validator("p_intensity")
    @classmethod
    def _probabilities(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-9:
            raise ValueError(f"p_intensity {v} must be >= 0 and sum to 1")
        return v


class FiberConfig(_Model):
    """The quantum channel: loss, birefringence drift (SU(2) random walk + jumps), delay drift."""

    length_km: float = Field(50.0, ge=0.0, le=500.0)
    loss_db_per_km: float = Field(0.2, ge=0.0, le=10.0)
    extra_loss_db: float = Field(0.0, ge=0.0, description="connectors, splices")
    group_index: float = Field(1.468, ge=1.0, le=2.0)
    initial_rotation: Literal["identity", "random"] = "identity"
    drift_rad_per_sqrt_s: float = Field(0.0, ge=0.0, description="SU(2) random-walk rate")
    jump_rate_hz: float = Field(0.0, ge=0.0)
    jump_size_rad: float = Field(0.5, ge=0.0)
    delay_drift_ps_per_s: float = Field(0.0, description="slow temperature drift of the delay")


class ControllerConfig(_Model):
    """Bob's polarization controller in the light path (both exist; `model` picks one)."""

    model: Literal["epc", "mpc320"] = "mpc320"
    epc_v_pi_mv: float = Field(2500.0, gt=0.0, description="voltage of pi retardance")
    epc_offset_rad: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


class DetectorConfig(_Model):
    """One single-photon detector (threshold, free-running)."""

    efficiency: float = Field(0.25, ge=0.0, le=1.0)
    dark_count_hz: float = Field(100.0, ge=0.0)
    dead_time_ps: int = Field(10_000, ge=0)
    afterpulse_prob: float = Field(0.01, ge=0.0, lt=1.0)
    afterpulse_delay_ps: float = Field(200_000.0, gt=0.0, description="mean delay after the click")
    jitter_ps: float = Field(30.0, ge=0.0, description="Gaussian sigma")
    window_center_ps: float = Field(0.0, description="arrival offset of peak efficiency")
    window_width_ps: float = Field(0.0, ge=0.0, description="Gaussian sigma of efficiency vs arrival; 0 = flat")


class TaggerConfig(_Model):
    """Bob's time tagger: channels, resolution, per-channel settings, transfer limit."""

    channels: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    resolution_ps: int = Field(1, ge=1)
    dead_time_ps: int = Field(2000, ge=0)
    trigger_level_v: float = 0.5
    pulse_amplitude_v: float = Field(1.0, gt=0.0, description="detector output pulse height")
    noise_level_v: float = Field(0.02, ge=0.0, description="levels below this trigger on noise")
    noise_rate_hz: float = Field(1.0e6, ge=0.0)
    max_rate_tags_per_s: float = Field(80e6, gt=0.0)
    buffer_tags: int = Field(1 << 22, ge=1)

    @field_validator("channels")
    @classmethod
    def _roles(cls, v: dict[str, int]) -> dict[str, int]:
        if set(v) != set(DEFAULT_CHANNELS):
            raise ValueError(f"channels must name exactly {sorted(DEFAULT_CHANNELS)}, got {sorted(v)}")
        if len(set(v.values())) != len(v):
            raise ValueError(f"channels must be distinct, got {v}")
        return v


class EveConfig(_Model):
    """Eavesdropper; every strength 0 = off (the default)."""

    intercept_resend_fraction: float = Field(0.0, ge=0.0, le=1.0)
    pns_fraction: float = Field(0.0, ge=0.0, le=1.0, description="fraction of pulses under PNS")
    blinding_fraction: float = Field(0.0, ge=0.0, le=1.0, description="fraction of pulses Eve fakes")
    time_shift_fraction: float = Field(0.0, ge=0.0, le=1.0)
    time_shift_ps: float = Field(0.0, description="Eve shifts the arrival by +/- this")

    @property
    def active(self) -> bool:
        """True when any attack is switched on."""
        return (
            self.intercept_resend_fraction > 0
            or self.pns_fraction > 0
            or self.blinding_fraction > 0
            or self.time_shift_fraction > 0
        )


class QrngConfig(_Model):
    """Alice's QRNG (firmware_sim.physics.qrng): a beam splitter with a detector behind each output."""

    raw: Literal["path", "time"] = Field("path", description="which-path bit or arrival-time parity")
    split_ratio: float = Field(0.5, ge=0.0, le=1.0, description="probability a photon takes output 1")
    efficiency: tuple[float, float] = (0.25, 0.25)
    dark_fraction: float = Field(1e-3, ge=0.0, le=1.0, description="raw samples that are dark counts")
    photon_rate_hz: float = Field(1e7, gt=0.0, description="detected photons per second")
    time_bin_ps: float = Field(50.0, gt=0.0)
    h_claim: float = Field(0.9, gt=0.0, le=1.0, description="claimed min-entropy per raw bit (health tests)")


class SimConfig(_Model):
    """Everything the simulated bench needs; `SimConfig()` is a working 50 km, 1 GHz bench."""

    source: SourceConfig = SourceConfig()
    fiber: FiberConfig = FiberConfig()
    controller: ControllerConfig = ControllerConfig()
    bob_loss_db: float = Field(1.0, ge=0.0, description="Bob's optics insertion loss")
    p_bob_z: float = Field(0.5, ge=0.0, le=1.0, description="passive basis splitter: prob to Z")
    detectors: tuple[DetectorConfig, DetectorConfig, DetectorConfig, DetectorConfig] = (
        DetectorConfig(), DetectorConfig(), DetectorConfig(), DetectorConfig(),
    )
    tagger: TaggerConfig = TaggerConfig()
    eve: EveConfig = EveConfig()
    alice_choices: Literal["prng", "qrng", "os"] = Field(
        "prng", description="source of Alice's choices: seeded PRNG (reproducible), QRNG, OS CSPRNG")
    qrng: QrngConfig = QrngConfig()
    physics_step_s: float = Field(1e-3, gt=0.0, le=10.0, description="drift update step")
    max_slots_per_acquire: int = Field(200_000_000, ge=1)

    @model_validator(mode="after")
    def _eve_sane(self) -> "SimConfig":
        e = self.eve
        if e.intercept_resend_fraction + e.pns_fraction + e.blinding_fraction > 1.0 + 1e-12:
            raise ValueError("eve: intercept_resend + pns + blinding fractions exceed 1")
        return self

    @classmethod
    def build(cls, **kwargs: object) -> "SimConfig":
        """Construct from plain data (e.g. a TOML table); invalid values raise ConfigError."""
        try:
            return cls.model_validate(kwargs)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"simulator config: {where}: {first['msg']}") from None
