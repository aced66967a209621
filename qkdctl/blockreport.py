"""BlockReport: every figure of one key block, the record all consumers share.

The run database, the detectors, the tuners and the HTML report read it.  It
never holds key bits.  Units are in the field names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Alarm:
    """A detector's finding on a block. severity: 'info' | 'warn' | 'abort'."""

    source: str
    severity: str
    message: str


@dataclass
class BlockReport:
    """Figures of one block (status 'ok' when key was stored, else 'aborted')."""

    block_id: int
    status: str = "ok"
    abort_reason: str = ""
    duration_s: float = 0.0
    n_tags: int = 0
    gate_rejected_fraction: float = 0.0
    detections: int = 0
    sifted_bits_z: int = 0
    sifted_bits_x: int = 0
    qber_z: float = float("nan")
    qber_x: float = float("nan")
    qber_true_z: float = float("nan")
    qber_by_intensity: dict = field(default_factory=dict)
    gains_by_intensity: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    method: str = ""
    leaked_bits: int = 0
    ec_efficiency: float = float("nan")
    round_trips: int = 0
    verified: bool = False
    key_bits: int = 0
    key_id: str = ""
    keyrate_terms: dict = field(default_factory=dict)
    telemetry: dict = field(default_factory=dict)  # qkdctl.core.telemetry.block_telemetry
    stage_seconds: dict = field(default_factory=dict)
    alarms: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    tuner: dict = field(default_factory=dict)
    probes: int = 0  # probe measurements the tuners took after this block (qkdctl.probe)
    probe_seconds: float = 0.0  # bench time those probes acquired (s)
    selection: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serializable once NaN handling is applied by the caller)."""
        return asdict(self)
