"""Record a bench to HDF5 and replay a recording through the same engine as a live run.

`record_bench` opens the bench of a lab config (real drivers, or the embedded
simulated bench), sets the config's intensities on the VOA and writes blocks of
`[engine].block_seconds` into a `qkdctl-recording` file (`qkdctl record`).

`ReplayHardware` is a `Hardware` whose blocks come from such a file, or from a
PicoQuant T2 PTU file with Alice's record beside it, through the replay drivers
(`drivers.replay.ReplayTagger` / `ReplayAlice`), so `replay_run` feeds the
recorded tags to the unchanged `Engine` and pipeline (`qkdctl replay`).
A recording fixes the optics: a replay accepts only the software parameters
(gate offset and width); asking it to move a VOA or a polarization controller
raises `QkdInputError`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Mapping

import numpy as np

from drivers.replay import ReplayAlice, ReplayTagger
from drivers.tagger.ptu import MAGIC as PTU_MAGIC
from drivers.tagger.ptu import PtuReader
from qkdctl.config import LabConfig, parse_config
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.engine import Engine, EngineOptions, RunSummary
from qkdctl.hardware import SOFTWARE_PARAMS, Acquisition, Hardware, intensity_params
from qkdctl.runner import block_settings, make_detectors, stop_on_signals
from qkdctl.store.recording import RecordingReader, record_to_hdf5
from qkdctl.wiring import open_bench

def config_from_text(text: str, source: str) -> LabConfig:
    """A lab config from TOML text (e.g. the config stored in a recording)."""
    if not text.strip():
        raise ConfigError(f"{source}: holds no config text; pass --config")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: stored config is not valid TOML ({exc})") from None
    return parse_config(data, source)


def operating_params(cfg: LabConfig) -> dict[str, float]:
    """Operating parameters a recording was made with: VOA settings of the config's
    intensities and the configured gate."""
    params = intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db)
    params["gate.width_ps"] = cfg.timing.gate_width_ps
    if cfg.timing.gate_offset_ps is not None:
        params["gate.offset_ps"] = cfg.timing.gate_offset_ps
    return params


def record_bench(cfg: LabConfig, config_text: str, seconds: float, path: str | os.PathLike,
                 seed: int = 0) -> int:
    """Record `seconds` of the config's bench into an HDF5 file; return the number of blocks.

    Blocks last [engine].block_seconds (s); the VOA, when present, is first set to
    the config's intensities.  seed: seed of the embedded simulated bench (stored).
    """
    if cfg.protocol is None:
        raise ConfigError(f"{cfg.source}: missing table [protocol]")
    with open_bench(cfg, seed=seed) as hw:
        if hw.voa is not None:
            hw.apply(intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db))
        return record_to_hdf5((hw.tagger, hw.alice), seconds, path, config_text,
                              seeds={"bench": seed}, block_s=cfg.engine.block_seconds)


def _ptu_span_ps(path: str | os.PathLike, sync_channel: int) -> int:
    """Time of the last tag of a T2 PTU file (ps; one decoding pass, chunk by chunk)."""
    last = 0
    for chunk in PtuReader(path, sync_channel=sync_channel).chunks():
        if chunk.t_ps.size:
            last = max(last, int(chunk.t_ps.max()))
    return last


class ReplayHardware(Hardware):
    """Recorded blocks, in order, as a bench (optics fixed by the recording).

    tagger/alice: replay drivers; n_blocks: how many blocks the source holds;
    block_s: block length (s); params: the operating parameters in force when it
    was recorded (see `operating_params`); only gate.offset_ps / gate.width_ps
    can be changed.  Build with `from_recording` (HDF5) or `from_ptu` (T2 PTU).
    """

    def __init__(self, tagger: ReplayTagger, alice: ReplayAlice, n_blocks: int, block_s: float,
                 params: Mapping[str, float], mu_at_0db: float = 1.0) -> None:
        if n_blocks < 1:
            tagger.close()
            alice.close()
            raise QkdInputError(f"{tagger.name}: the recording holds no complete block")
        self.tagger, self.alice = tagger, alice
        self.n_blocks = int(n_blocks)
        self.block_s = float(block_s)
        self.mu_at_0db = mu_at_0db
        self._params = {k: float(v) for k, v in params.items()}

    @classmethod
    def from_recording(cls, path: str | os.PathLike, cfg: LabConfig) -> "ReplayHardware":
        """An HDF5 recording: its blocks as recorded (block length: the median recorded one)."""
        reader = RecordingReader(path)
        rows = reader.rows
        block_s = float(np.median(rows["stop_ps"] - rows["start_ps"])) * 1e-12 if len(rows) else 0.0
        return cls(ReplayTagger.from_recording(reader), ReplayAlice(recording=reader), len(reader), block_s,
                   operating_params(cfg), cfg.engine.mu_at_0db)

    @classmethod
    def from_ptu(cls, path: str | os.PathLike, alice_path: str | os.PathLike, cfg: LabConfig) -> "ReplayHardware":
        """A T2 PTU file cut in windows of [engine].block_seconds, with Alice's record file.

        The Alice file (.npz/.h5, see `drivers.replay.ReplayAlice.from_file`) needs
        slot_period_ps and slot0_t_ps unless the file is replayed as a single block.
        Windows are counted up to the last tag; a last partial window is dropped.
        """
        block_ps = int(round(cfg.engine.block_seconds * 1e12))
        n_blocks = _ptu_span_ps(path, cfg.channels.sync) // block_ps
        alice = ReplayAlice.from_file(alice_path)
        tagger = ReplayTagger.from_ptu(path, sync_channel=cfg.channels.sync,
                                       channels=sorted(cfg.channels.model_dump().values()))
        return cls(tagger, alice, n_blocks, block_ps * 1e-12, operating_params(cfg), cfg.engine.mu_at_0db)

    def block_seconds(self) -> float:
        """Block length of the replay (s)."""
        return self.block_s

    def params(self) -> dict[str, float]:
        return dict(self._params)

    def apply(self, params: Mapping[str, float]) -> None:
        fixed = sorted(set(params) - SOFTWARE_PARAMS)
        if fixed:
            raise QkdInputError(f"a replay cannot change {fixed}: the recording fixed the optics")
        self._params.update({k: float(v) for k, v in params.items()})

    def acquire(self, duration_s: float) -> Acquisition:
        """The next recorded block (HDF5: as recorded, `duration_s` only checked; PTU: the next window)."""
        tags = self.tagger.read_block(self.block_s)
        alice = self.alice.record_for(tags)
        return Acquisition(int(tags.meta.get("block_id", 0)), tags, alice, self.params())

    def close(self) -> None:
        self.tagger.close()
        self.alice.close()


def _is_ptu(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == PTU_MAGIC
    except OSError:
        return False


def replay_run(path: str | os.PathLike, out_dir: str | os.PathLike, cfg: LabConfig | None = None,
               seed: int | None = None, blocks: int | None = None,
               alice_path: str | os.PathLike | None = None) -> RunSummary:
    """Run the engine over a recording (every block, or the first `blocks`); return the summary.

    path: an HDF5 recording, or a T2 PTU file (then `cfg` and `alice_path`, Alice's
    record file, are required).  cfg: the lab config to process with (default: the
    one stored in the HDF5 recording).  The config's detectors run; tuners do not
    (the optics are fixed).  Settings as in `qkdctl run` (`qkdctl.runner.block_settings`).
    The run database and key stores go to out_dir; SIGINT/SIGTERM finish the block
    in flight, then stop.
    """
    if _is_ptu(path):
        if cfg is None or alice_path is None:
            raise QkdInputError(f"{path} is a PTU file: replaying it needs --config and --alice (Alice's record)")
        config_text = Path(cfg.source).read_text() if Path(cfg.source).is_file() else ""
    else:
        with RecordingReader(path) as probe:
            stored_text = probe.config_text
        if cfg is None:
            cfg = config_from_text(stored_text, f"recording {str(path)!r}")
            config_text = stored_text
        else:
            config_text = Path(cfg.source).read_text() if Path(cfg.source).is_file() else stored_text
    if cfg.protocol is None:
        raise ConfigError(f"{cfg.source}: missing table [protocol]")
    settings = block_settings(cfg)
    hw = ReplayHardware.from_ptu(path, alice_path, cfg) if _is_ptu(path) else ReplayHardware.from_recording(path, cfg)
    with hw:
        n = hw.n_blocks if blocks is None else min(int(blocks), hw.n_blocks)
        if n < 1:
            raise QkdInputError(f"--blocks must be >= 1, got {blocks}")
        options = EngineOptions(block_seconds=hw.block_seconds(), queue_depth=cfg.engine.queue_depth,
                                max_consecutive_aborts=cfg.engine.max_consecutive_aborts,
                                startup_blocks=cfg.engine.startup_blocks)
        engine = Engine(hw, settings, out_dir, options=options, detectors=make_detectors(cfg), seed=seed,
                        config_text=config_text)
        with stop_on_signals(engine):
            return engine.run(blocks=n)
