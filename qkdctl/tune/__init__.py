"""Tuners: retune the bench between key blocks (classical and QML, one interface).

`make_tuner(name, calibration, options)` builds one by the name used in the lab
config's [tuner] table; `options` are the tuner's keyword arguments.
"""

from __future__ import annotations

from typing import Callable, Mapping

from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.tune.base import Tuner


def _tomographic(calibration, options: Mapping) -> Tuner:
    from qkdctl.tune.tomographic import TomographicTuner

    return TomographicTuner(calibration, **options)


def _spsa(calibration, options: Mapping) -> Tuner:
    import numpy as np

    from qkdctl.tune.modelfree import SpsaTuner

    opts = dict(options)
    if "seed" not in opts:
        raise QkdInputError("spsa needs option 'seed' (its perturbations come from a seeded generator)")
    return SpsaTuner(calibration, np.random.default_rng(int(opts.pop("seed"))), **opts)


def _nelder_mead(calibration, options: Mapping) -> Tuner:
    from qkdctl.tune.modelfree import NelderMeadTuner

    return NelderMeadTuner(calibration, **options)


_FACTORIES: dict[str, Callable[[object, Mapping], Tuner]] = {
    "tomographic": _tomographic,
    "spsa": _spsa,
    "nelder-mead": _nelder_mead,
}


def tuner_names() -> list[str]:
    """Names accepted by make_tuner."""
    return sorted(_FACTORIES)


def make_tuner(name: str, calibration, options: Mapping | None = None) -> Tuner:
    """Build the tuner called `name` (ConfigError for an unknown name or bad options)."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown tuner {name!r}; known: {', '.join(tuner_names())}")
    try:
        return _FACTORIES[name](calibration, dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"tuner {name!r}: bad options {dict(options or {})}: {exc}") from None
    except QkdInputError as exc:
        raise ConfigError(f"tuner {name!r}: {exc}") from None
