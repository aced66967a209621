"""The common contract of every driver class in `drivers` (found by walking the package)."""

import importlib
import inspect
import pkgutil

import pytest

import drivers
from drivers.instrument import Channel, Instrument
from drivers.parameters import Parameter, parameters_of
from tests.drivers.fake_link import fake_transport


def _classes(base: type) -> list[type]:
    for info in pkgutil.walk_packages(drivers.__path__, "drivers."):
        importlib.import_module(info.name)
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("drivers.") and not inspect.isabstract(sub):
                found.add(sub)
    return sorted(found, key=lambda c: c.__qualname__)


DRIVERS = _classes(Instrument)
CHANNELS = _classes(Channel)


def test_the_drivers_are_found():
    names = {c.__name__ for c in DRIVERS}
    assert {"KeysightN7764A", "KeysightN7766A", "GenericScpiVoa", "Epc400", "Mpc320"} <= names
    assert {"N776xChannel", "N776xPowerChannel", "EpcChannel", "Paddle"} <= {c.__name__ for c in CHANNELS}


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__name__)
def test_constructor_signature(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params[0].name == "transport" and params[0].kind is params[0].POSITIONAL_OR_KEYWORD
    rest = params[1:]
    assert "name" in [p.name for p in rest]
    for p in rest:
        assert p.kind is p.KEYWORD_ONLY and p.default is not p.empty, f"{cls.__name__}: {p.name}"


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda c: c.__name__)
def test_close_and_context_manager(cls):
    transport, link = fake_transport([])
    with cls(transport, name="meta") as inst:
        assert inst.name == "meta"
        assert inst.lock is transport.lock
    assert link.closed
    inst.close()


@pytest.mark.parametrize("cls", DRIVERS + CHANNELS, ids=lambda c: c.__name__)
def test_docstrings(cls):
    assert (cls.__doc__ or "").strip(), cls.__name__
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
            continue
        assert (member.__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"


@pytest.mark.parametrize("cls", DRIVERS + CHANNELS, ids=lambda c: c.__name__)
def test_units_and_docs_on_every_parameter(cls):
    for param in parameters_of(cls):
        assert isinstance(param, Parameter)
        assert isinstance(param.unit, str) and param.unit.strip(), f"{cls.__name__}.{param.name} has no unit"
        doc = (param.__doc__ or "").strip()
        assert doc.split()[0] in ("Control", "Measure", "Get", "Set"), f"{cls.__name__}.{param.name}: {doc!r}"
        assert param.unit in param.describe()
