"""Shared set-up of the engine and pipeline tests: the sim_bench config's link model on
ModelHardware, with the block settings those tests use (gate 300 ps + 400 ps wide)."""

from pathlib import Path

import numpy as np

from qkdctl.config import load_config
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.linkmodel import LinkModel
from qkdctl.core.tags import GateConfig
from qkdctl.engine import Engine, EngineOptions
from qkdctl.hardware import ModelHardware
from qkdctl.pipeline import BlockSettings

CONFIG = "lab_configs/sim_bench.toml"
SYNC_DIVIDER = 100


def model_at(distance_km: float = 5.0) -> LinkModel:
    """The sim_bench config's link model at `distance_km`."""
    return load_config(CONFIG).link_model(distance_km=distance_km)


def model_settings(model: LinkModel, method: str = "cascade-biconf", qber_abort: float = 0.11) -> BlockSettings:
    """Block settings for tags of `model` generated with SYNC_DIVIDER (sync on channel 0)."""
    return BlockSettings(
        sync_channel=0, sync_divider=SYNC_DIVIDER, nominal_sync_period_ps=None,
        gate=GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=300.0, width_ps=400.0),
        mu=model.intensities, p_mu=model.intensity_probs, eps_sec=1e-10, eps_cor=1e-15,
        qber_abort=qber_abort, method=method,
    )


def model_engine(out: Path, model: LinkModel, *, tuners=(), hw_class=ModelHardware, hw_seed: int = 3,
                 seed: int = 11, block_seconds: float = 0.01, **options) -> Engine:
    """An Engine on `hw_class(model)` writing to `out`; `options` go to EngineOptions."""
    hw = hw_class(model, np.random.default_rng(hw_seed), sync_divider=SYNC_DIVIDER)
    return Engine(hw, model_settings(model), out, seed=seed, tuners=tuners,
                  options=EngineOptions(block_seconds=block_seconds, **options))
