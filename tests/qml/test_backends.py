"""Backends: aer, aer:<device>, fake:<device>, ibm:<name> (mocked service); typed errors, no fallback."""

import pytest
from qiskit import QuantumCircuit

from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import fake_device_names, open_backend

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def bell_like() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.measure_all()
    return qc


@pytest.mark.parametrize("spec,kind,name", [("aer", "aer", "aer_simulator"),
                                            ("aer:manila", "aer", "aer_simulator_from(fake_manila)"),
                                            ("fake:manila", "fake", "fake_manila"),
                                            ("fake:FakeManilaV2", "fake", "fake_manila")])
def test_local_backends_sample_isa_circuits(spec, kind, name):
    b = open_backend(spec, seed=4)
    assert (b.kind, b.name, b.is_local) == (kind, name, True)
    isa = b.isa([bell_like()])[0]
    allowed = set(b.backend.target.operation_names) | {"measure", "barrier"}
    assert {inst.operation.name for inst in isa.data} <= allowed
    counts = b.sampler().run([isa], shots=400).result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 400 and 120 < counts.get("0", 0) < 280
    assert b.retrieve("any") is None  # local jobs cannot be looked up by id


def test_seeded_fake_backend_is_reproducible():
    runs = []
    for _ in range(2):
        b = open_backend("fake:manila", seed=9)
        runs.append(b.sampler().run(b.isa([bell_like()]), shots=200).result()[0].data.meas.get_counts())
    assert runs[0] == runs[1]


@pytest.mark.parametrize("spec,match", [("", "backend must be"), ("qpu", "unknown quantum backend"),
                                        ("fake:", "name the fake device"), ("fake:nowhere", "unknown fake device"),
                                        ("aer:nowhere", "unknown fake device"), ("ibm:", "name the IBM backend")])
def test_bad_names_are_typed_errors(spec, match):
    with pytest.raises(QkdInputError, match=match):
        open_backend(spec)


def test_batch_mode_only_for_ibm_and_known_modes():
    with pytest.raises(QkdInputError, match="batch mode exists only"):
        open_backend("aer", mode="batch")
    with pytest.raises(QkdInputError, match="execution mode"):
        open_backend("aer", mode="session-ish")


def test_fake_device_names_listed():
    names = fake_device_names()
    assert "manila" in names and len(names) > 20


def test_ibm_without_account_is_an_error_not_a_fallback():
    from qiskit_ibm_runtime.accounts import AccountNotFoundError

    def no_account():
        raise AccountNotFoundError("Unable to find account.")

    with pytest.raises(QkdInputError, match="no usable IBM Quantum account"):
        open_backend("ibm:ibm_brisbane", service_factory=no_account)


def test_ibm_unknown_backend_is_an_error(mocker):
    service = mocker.Mock()
    service.backend.side_effect = Exception("QiskitBackendNotFoundError: No backend matches the criteria.")
    with pytest.raises(QkdInputError, match="not available to this account"):
        open_backend("ibm:ibm_nowhere", service_factory=lambda: service)


def test_ibm_job_and_batch_modes_use_runtime_sampler(mocker):
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    service = mocker.Mock()
    service.backend.return_value = FakeManilaV2()  # stands in for the account's device
    sampler_cls = mocker.patch("qiskit_ibm_runtime.executor_sampler.Sampler")
    batch_cls = mocker.patch("qiskit_ibm_runtime.Batch")
    b = open_backend("ibm:ibm_manila", service_factory=lambda: service)
    assert (b.kind, b.is_local) == ("ibm", False)
    service.backend.assert_called_once_with("ibm_manila")
    b.sampler()
    sampler_cls.assert_called_with(mode=service.backend.return_value)
    bb = open_backend("ibm:ibm_manila", mode="batch", service_factory=lambda: service)
    bb.sampler()
    bb.sampler()
    batch_cls.assert_called_once_with(backend=service.backend.return_value)  # one batch for all jobs
    sampler_cls.assert_called_with(mode=batch_cls.return_value)
    bb.close()
    batch_cls.return_value.close.assert_called_once()
    service.job.return_value = "job-object"
    assert b.retrieve("d1") == "job-object"
    service.job.side_effect = Exception("RuntimeJobNotFound")
    with pytest.raises(QkdInputError, match="cannot retrieve job"):
        b.retrieve("d2")
