"""Detectors by name for the engine and the benchmark: `make_detector(name, options)`.

Names: "rules"; classical "iforest", "ocsvm", "logreg", "forest", "boosting";
quantum "qsvc", "qocsvm", "vqc", "gan" (quantum-generator GAN's discriminator); "default" (the set that wins the benchmark,
DEFAULT_SET, each member loaded from options["model_dir"]/<name>.pkl when present;
the rules without a file use the run's history as reference).
Options: "model_path" (a file written by `save`: the trained detector is loaded
from it), "seed" (int), "qber_abort" (rules), "severity", "quick" (quantum:
smaller training set), "backend" (quantum: a qkdctl.qml backend spec, default "aer").
An untrained model detector cannot score: the engine needs "model_path"; the
unfitted rules use the run's own history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qkdctl.blockreport import Alarm, BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import load
from qkdctl.detect.classical import ONE_CLASS, SUPERVISED, ClassicalDetector
from qkdctl.detect.rules import RuleDetector

QUANTUM = ("qsvc", "qocsvm", "vqc", "gan")
DEFAULT_SET = ("rules",)
"""Benchmark winners (docs/detection.md): no model beat the rules on every attack at fewer false alarms."""
NAMES = ("rules",) + ONE_CLASS + SUPERVISED + QUANTUM + ("default",)


class DetectorSet:
    """Several detectors as one Detector callable (alarms concatenated)."""

    def __init__(self, members: Sequence) -> None:
        self.members = list(members)

    def __call__(self, report: BlockReport, history: Sequence[BlockReport]) -> list[Alarm]:
        alarms: list[Alarm] = []
        for det in self.members:
            alarms.extend(det(report, history))
        return alarms


def _default_member(name: str, opts: dict):
    """A member of the default set: loaded from options["model_dir"]/<name>.pkl when that
    file exists; else the unfitted rules (history reference); a model without a file is an error."""
    model_dir = opts.get("model_dir")
    path = Path(model_dir) / f"{name}.pkl" if model_dir is not None else None
    if path is not None and path.exists():
        return load(path)
    if name == "rules":
        return RuleDetector(qber_abort=float(opts.get("qber_abort", 0.11)))
    raise QkdInputError(f"default detector {name!r} needs a trained model file: {path or 'options.model_dir'}")


def make_detector(name: str, options: dict | None = None):
    """A detector (Detector callable with fit/score) by name; QkdInputError for unknown names/options."""
    opts = dict(options or {})
    if name not in NAMES:
        raise QkdInputError(f"unknown detector {name!r}; known: {', '.join(NAMES)}")
    if name == "default":
        return DetectorSet([_default_member(n, opts) for n in DEFAULT_SET])
    if "model_path" in opts:
        det = load(opts["model_path"])
        if det.name.split(":")[-1] != name:
            raise QkdInputError(f"{opts['model_path']} holds detector {det.name!r}, not {name!r}")
        return det
    seed = int(opts.get("seed", 0))
    severity = str(opts.get("severity", "abort"))
    if name == "rules":
        return RuleDetector(qber_abort=float(opts.get("qber_abort", 0.11)))
    if name in ONE_CLASS + SUPERVISED:
        return ClassicalDetector(name, seed=seed, severity=severity)
    if name == "gan":
        from qkdctl.detect.gan import QuantumGanDetector

        return QuantumGanDetector(seed=seed, severity=severity, quick=bool(opts.get("quick", False)),
                                  backend=str(opts.get("backend", "aer")))
    from qkdctl.detect.quantum import QuantumDetector

    return QuantumDetector(name, seed=seed, severity=severity, quick=bool(opts.get("quick", False)),
                           backend=str(opts.get("backend", "aer")))
