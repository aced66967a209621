"""Quantum execution backends for the QML tuners: `aer`, `aer:<device>`, `fake:<device>`, `ibm:<name>`.

Layers are injected (docs/qml_backends.md): a model (tuner, regressor) builds
circuits and asks a `QuantumBackend` for ISA circuits and a V2 sampler; it never
touches the backend itself, so switching Aer / fake / IBM changes no model code.

- `aer`: qiskit_aer AerSimulator, noiseless; `aer:<device>`: AerSimulator with the
  noise model, basis gates and coupling map of the fake device `<device>`.
- `fake:<device>`: a qiskit_ibm_runtime.fake_provider backend (e.g. fake:manila ->
  FakeManilaV2) in local testing mode, run with qiskit-ibm-runtime's client-side
  Sampler (the one the installed version recommends; its SamplerV2 is deprecated).
- `ibm:<name>`: QiskitRuntimeService() with the user's saved account, job mode or
  batch mode.  Nothing here falls back to a simulator: a missing account, backend
  or unknown name raises QkdInputError.

Circuits are transpiled to the backend's ISA with
qiskit.transpiler.generate_preset_pass_manager.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from qkdctl.core.errors import QkdInputError

MODES = ("job", "batch")


def fake_device_names() -> list[str]:
    """Short names of the fake devices of qiskit_ibm_runtime.fake_provider ("manila", ...)."""
    from qiskit_ibm_runtime import fake_provider

    return sorted(m.group(1).lower() for n in dir(fake_provider)
                  if (m := re.fullmatch(r"Fake(\w+?)V2", n)) is not None)


def _fake_device(name: str):
    """Instantiate the fake device `name` ("manila", "fake_manila" or "FakeManilaV2")."""
    from qiskit_ibm_runtime import fake_provider

    key = name.strip().lower()
    key = re.sub(r"^fake_?", "", key)
    key = re.sub(r"v2$", "", key)
    for attr in dir(fake_provider):
        m = re.fullmatch(r"Fake(\w+?)V2", attr)
        if m is not None and m.group(1).lower() == key:
            return getattr(fake_provider, attr)()
    raise QkdInputError(f"unknown fake device {name!r}; known: {', '.join(fake_device_names())}")


def _default_service():
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService()


@dataclass
class QuantumBackend:
    """One execution backend: ISA transpilation, a V2 sampler, job retrieval by id.

    spec: the name it was opened with; kind: "aer" | "fake" | "ibm"; mode: "job" or
    "batch" (batch only for ibm); seed: simulator seed (aer/fake) or None.
    """

    spec: str
    kind: str
    backend: object
    mode: str = "job"
    seed: int | None = None
    service: object | None = None
    optimization_level: int = 1
    _batch: object | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The backend's own name (e.g. "aer_simulator", "fake_manila", "ibm_brisbane")."""
        return str(self.backend.name)

    @property
    def is_local(self) -> bool:
        """True when jobs run in this process (aer, fake): they do not outlive it."""
        return self.kind != "ibm"

    def isa(self, circuits: Sequence) -> list:
        """Circuits transpiled to the backend's ISA (preset pass manager)."""
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(optimization_level=self.optimization_level, backend=self.backend,
                                          seed_transpiler=self.seed)
        return list(pm.run(list(circuits)))

    def sampler(self):
        """A V2 sampler on this backend (aer: qiskit_aer; fake/ibm: runtime's client-side Sampler)."""
        if self.kind == "aer":
            from qiskit_aer.primitives import SamplerV2

            return SamplerV2.from_backend(self.backend, seed=self.seed)
        from qiskit_ibm_runtime.executor_sampler import Sampler

        if self.kind == "fake":
            opts = {"simulator": {"seed_simulator": self.seed}} if self.seed is not None else None
            return Sampler(mode=self.backend, options=opts)
        if self.mode == "batch":
            if self._batch is None:
                from qiskit_ibm_runtime import Batch

                self._batch = Batch(backend=self.backend)
            return Sampler(mode=self._batch)
        return Sampler(mode=self.backend)

    def retrieve(self, job_id: str):
        """The remote job `job_id` (ibm: QiskitRuntimeService.job); None for local backends."""
        if self.is_local:
            return None
        try:
            return self.service.job(job_id)
        except Exception as exc:  # runtime raises RuntimeJobNotFound, IBMApiError, ...
            raise QkdInputError(f"{self.spec}: cannot retrieve job {job_id!r}: {exc}") from None

    def close(self) -> None:
        """Close the batch (ibm batch mode); nothing to do otherwise."""
        if self._batch is not None:
            self._batch.close()
            self._batch = None


def open_backend(spec: str, *, seed: int | None = None, mode: str = "job",
                 service_factory: Callable[[], object] | None = None) -> QuantumBackend:
    """Open the backend named `spec` ("aer", "aer:<device>", "fake:<device>", "ibm:<name>").

    seed: simulator seed (aer, fake); mode: "job" | "batch" (ibm); service_factory:
    builds the QiskitRuntimeService (default: QiskitRuntimeService() with the saved
    account).  QkdInputError for an unknown name, a missing account or backend.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise QkdInputError(f"quantum backend must be a name like 'aer', 'fake:manila', 'ibm:ibm_brisbane'; got {spec!r}")
    if mode not in MODES:
        raise QkdInputError(f"execution mode must be one of {MODES}, got {mode!r}")
    kind, _, arg = spec.strip().partition(":")
    if kind == "aer":
        from qiskit_aer import AerSimulator

        if mode != "job":
            raise QkdInputError(f"{spec}: batch mode exists only for ibm: backends")
        sim = AerSimulator.from_backend(_fake_device(arg)) if arg else AerSimulator()
        if seed is not None:
            sim.set_options(seed_simulator=seed)
        return QuantumBackend(spec, "aer", sim, seed=seed)
    if kind == "fake":
        if not arg:
            raise QkdInputError(f"{spec!r}: name the fake device, e.g. fake:manila")
        if mode != "job":
            raise QkdInputError(f"{spec}: batch mode exists only for ibm: backends")
        return QuantumBackend(spec, "fake", _fake_device(arg), seed=seed)
    if kind == "ibm":
        if not arg:
            raise QkdInputError(f"{spec!r}: name the IBM backend, e.g. ibm:ibm_brisbane")
        try:
            service = (service_factory or _default_service)()
        except Exception as exc:  # AccountNotFoundError, IBMNotAuthorizedError, network errors
            raise QkdInputError(f"{spec}: no usable IBM Quantum account ({type(exc).__name__}: {exc}); "
                                "save one with QiskitRuntimeService.save_account (docs/qml_backends.md)") from None
        try:
            backend = service.backend(arg)
        except Exception as exc:  # QiskitBackendNotFoundError and friends
            raise QkdInputError(f"{spec}: IBM backend {arg!r} not available to this account: {exc}") from None
        return QuantumBackend(spec, "ibm", backend, mode=mode, service=service)
    raise QkdInputError(f"unknown quantum backend {spec!r}; use aer, aer:<device>, fake:<device> or ibm:<name>")
