"""Tuners: retune the bench between key blocks (classical and QML, one interface).

`make_tuner(name, calibration, options)` builds one by the name used in the lab
config's [tuner] table; `options` are the tuner's keyword arguments.  calibration:
the polarization controller's calibration for "tomographic", "spsa", "nelder-mead";
the source's mean photon number at 0 dB (mu_at_0db) for "decoy-direct", "decoy-mlp",
"link-adapted".
The default polarization tuner is "tomographic" (docs/qml.md).
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


def _qml_compile(calibration, options: Mapping, method: str | None = None) -> Tuner:
    from qkdctl.qml.factory import make_compile_tuner

    return make_compile_tuner(calibration, options, method)


def _decoy_direct(calibration, options: Mapping) -> Tuner:
    from qkdctl.tune.decoy import DecoyDirectTuner

    return DecoyDirectTuner(**_with_source(calibration, options))


def _decoy_mlp(calibration, options: Mapping) -> Tuner:
    from qkdctl.tune.decoy_predictor import DecoyMlpTuner

    return DecoyMlpTuner(**_with_source(calibration, options))


def _link_adapted(calibration, options: Mapping) -> Tuner:
    from qkdctl.tune.link_adapted import LinkAdaptedTuner

    return LinkAdaptedTuner(**_with_source(calibration, options))


def _with_source(calibration, options: Mapping) -> dict:
    """Decoy tuners' options; `calibration` is the source's mu_at_0db (photons/pulse) or None."""
    opts = dict(options)
    if calibration is not None:
        opts.setdefault("mu_at_0db", float(calibration))
    return opts


_FACTORIES: dict[str, Callable[[object, Mapping], Tuner]] = {
    "tomographic": _tomographic,
    "spsa": _spsa,
    "nelder-mead": _nelder_mead,
    "decoy-direct": _decoy_direct,
    "decoy-mlp": _decoy_mlp,
    "link-adapted": _link_adapted,
    "qml-compile": _qml_compile,
    "qml-compile-pshift": lambda calibration, options: _qml_compile(calibration, options, "pshift"),
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
