"""Set up and run the engine for `qkdctl run`: config -> bench, settings, tuners, detectors."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from qkdctl.blockreport import BlockReport
from qkdctl.config import LabConfig
from qkdctl.core.errors import ConfigError
from qkdctl.core.tags import GateConfig
from qkdctl.engine import Engine, EngineOptions, RunSummary
from qkdctl.pipeline import BlockSettings
from qkdctl.protocol.reconcile import available_methods
from qkdctl.hardware import intensity_params
from qkdctl.select.learner import RefitSchedule, SelectionLearner
from qkdctl.wiring import open_bench


def block_settings(cfg: LabConfig) -> BlockSettings:
    """The pipeline settings of a bench config (gate offset found on the first block if unset)."""
    proto = cfg.protocol
    ch = cfg.channels.model_dump()
    t = cfg.timing
    method = cfg.engine.reconciliation
    if method != "auto" and method not in available_methods():
        raise ConfigError(f"{cfg.source}: engine.reconciliation = {method!r}: unknown method; "
                          f"known: auto, {', '.join(sorted(available_methods()))}")
    return BlockSettings(
        sync_channel=ch["sync"], sync_divider=t.sync_divider,
        nominal_sync_period_ps=1e12 / t.pulse_rate_hz * t.sync_divider,
        gate=GateConfig.from_channels(ch, offset_ps=t.gate_offset_ps or 0.0, width_ps=t.gate_width_ps),
        mu=proto.intensities, p_mu=proto.intensity_probs, eps_sec=proto.eps_sec,
        eps_cor=proto.eps_cor, qber_abort=proto.qber_abort_threshold, method=method,
    )


def make_tuners(cfg: LabConfig, calibration) -> list:
    """Tuners named in [tuner] (polarization, intensities, timing), in that order."""
    from qkdctl.tune import make_tuner

    tuners = []
    for role in ("polarization", "intensities", "timing"):
        name = getattr(cfg.tuner, role)
        if name is None:
            continue
        options = cfg.tuner.options.get(name, {})
        if role == "polarization" and calibration is None:
            raise ConfigError(f"{cfg.source}: tuner.polarization = {name!r} needs [instruments.polarization]")
        # Intensity tuners are calibrated by the source (photons/pulse at 0 dB).
        tuners.append(make_tuner(name, cfg.engine.mu_at_0db if role == "intensities" else calibration, options))
    if cfg.control is not None:
        from qkdctl.control.tuner import control_tuner

        tuners.append(control_tuner(cfg.control, Path(cfg.source).parent))
    return tuners


def make_detectors(cfg: LabConfig) -> list:
    """Detectors named in [detect] (each a callable report, history -> alarms)."""
    from qkdctl.detect.factory import make_detector

    return [make_detector(name, cfg.detect.options.get(name, {})) for name in cfg.detect.detectors]


def make_learner(cfg: LabConfig, settings: BlockSettings, seed: int) -> SelectionLearner | None:
    """The refitted event selector of [select], or None when no selector is named."""
    sel = cfg.select
    if sel.selector is None:
        return None
    schedule = RefitSchedule(sel.selector, sel.refit_every_blocks, sel.history_blocks,
                             cfg.protocol.ec_efficiency)
    return SelectionLearner(schedule, settings.gate, seed)


def engine_options(cfg: LabConfig) -> EngineOptions:
    """The block loop's settings from [engine] (probe limits from [tuner])."""
    e = cfg.engine
    return EngineOptions(block_seconds=e.block_seconds, queue_depth=e.queue_depth,
                         max_consecutive_aborts=e.max_consecutive_aborts, startup_blocks=e.startup_blocks,
                         probe_budget=cfg.tuner.probe_budget, max_probe_s=cfg.tuner.max_probe_s)


@contextmanager
def stop_on_signals(engine: Engine):
    """SIGINT/SIGTERM finish the block in flight, then stop (main thread only)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: engine.stop())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_bench(cfg: LabConfig, config_text: str, out_dir: Path, *, blocks: int | None, seconds: float | None,
              seed: int | None, on_block: Callable[[BlockReport], None] | None = None) -> RunSummary:
    """Open the bench of `cfg`, set the protocol's intensities, run the engine, close the bench."""
    settings = block_settings(cfg)
    bench_seed = seed if seed is not None else int(time.time())
    with open_bench(cfg, seed=bench_seed) as hw:
        if hw.voa is not None:
            hw.apply(intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db))
        engine = Engine(
            hw, settings, out_dir,
            options=engine_options(cfg),
            tuners=make_tuners(cfg, hw.calibration), detectors=make_detectors(cfg), seed=seed,
            config_text=config_text, on_block=on_block, learner=make_learner(cfg, settings, bench_seed),
        )
        with stop_on_signals(engine):
            return engine.run(blocks=blocks, seconds=seconds)
