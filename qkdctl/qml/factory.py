"""Build QML tuners from lab-config options ([tuner.options.qml-compile] and friends)."""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping

import numpy as np

from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import open_backend
from qkdctl.qml.compiler import CompileSettings
from qkdctl.qml.compile_tuner import QmlCompileTuner

DEFAULT_METHOD = "cobyla"


def make_compile_tuner(calibration, options: Mapping, method: str | None = None) -> QmlCompileTuner:
    """QmlCompileTuner from options: backend ("aer" default), mode, seed (required), CompileSettings
    fields (method, shots, max_iter, ...) and the tuner's keywords (qber_threshold, timeout_s, ...).

    method: forced optimizer (the "-pshift" variant); an option naming another is an error.
    """
    opts = dict(options)
    if "seed" not in opts:
        raise QkdInputError("QML tuners need option 'seed' (simulator and optimizer randomness)")
    seed = int(opts.pop("seed"))
    if method is not None:
        if opts.get("method", method) != method:
            raise QkdInputError(f"this variant always uses method {method!r}, got option method={opts['method']!r}")
        opts["method"] = method
    opts.setdefault("method", DEFAULT_METHOD)
    names = {f.name for f in fields(CompileSettings)}
    settings = CompileSettings(**{k: opts.pop(k) for k in list(opts) if k in names})
    backend = open_backend(str(opts.pop("backend", "aer")), seed=seed, mode=str(opts.pop("mode", "job")))
    return QmlCompileTuner(calibration, backend, settings, np.random.default_rng(seed), **opts)
