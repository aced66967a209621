"""Declarative instrument parameters (QCoDeS `Parameter` / PyMeasure `control` style).

A driver is mostly a table of `Parameter` class attributes. Each carries its get
and set commands (templates with `{ch}` and `{value}` placeholders, or callables
for binary protocols), a unit, a validator and a one-line docstring. Reading the
attribute queries the instrument; assigning validates, formats and writes.

The owner (an `Instrument` or `Channel`) supplies `_get(command, parse)`,
`_set(command)` and `_placeholders()`, so the descriptor does no I/O of its own.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from qkdctl.core.errors import QkdInputError


class Validator(ABC):
    """Checks a value for an owner; raises `QkdInputError` (a ValueError) naming value and range."""

    @abstractmethod
    def __call__(self, value: Any, owner: Any) -> Any:
        """Return the value (cast) if allowed, else raise `QkdInputError`."""

    @abstractmethod
    def describe(self) -> str:
        """A short text of the allowed values, for documentation."""


@dataclass(frozen=True)
class Range(Validator):
    """A closed numeric interval [low, high]; or, with `limits_attr`, the owner's `(low, high)` attribute."""

    low: float = -math.inf
    high: float = math.inf
    limits_attr: str | None = None
    integer: bool = False

    def bounds(self, owner: Any) -> tuple[float, float]:
        """The interval in force for `owner`."""
        if self.limits_attr is not None:
            low, high = getattr(owner, self.limits_attr)
            return float(low), float(high)
        return self.low, self.high

    def __call__(self, value: Any, owner: Any) -> float | int:
        low, high = self.bounds(owner)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise QkdInputError(f"value {value!r} is not a finite number; allowed range is [{low:g}, {high:g}]")
        if self.integer and value != int(value):
            raise QkdInputError(f"value {value!r} is not an integer; allowed range is [{low:g}, {high:g}]")
        if not low <= value <= high:
            raise QkdInputError(f"value {value!r} is out of range; allowed range is [{low:g}, {high:g}]")
        return int(value) if self.integer else float(value)

    def describe(self) -> str:
        if self.limits_attr is not None:
            return f"model limits `{self.limits_attr}`"
        return f"[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choices(Validator):
    """One of a fixed set of values."""

    allowed: tuple[Any, ...]

    def __call__(self, value: Any, owner: Any) -> Any:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in self.allowed):
            raise QkdInputError(f"value {value!r} is not allowed; allowed values are {list(self.allowed)}")
        if value not in self.allowed:
            raise QkdInputError(f"value {value!r} is not allowed; allowed values are {list(self.allowed)}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(a) for a in self.allowed)


BOOL = Choices((False, True))


def parse_bool(text: str) -> bool:
    """Parse an instrument's boolean reply ('0'/'1', '+1', 'ON'/'OFF')."""
    word = text.strip().upper()
    if word in ("ON", "TRUE"):
        return True
    if word in ("OFF", "FALSE"):
        return False
    number = float(word)
    if number not in (0.0, 1.0):
        raise ValueError(f"not a boolean reply: {text!r}")
    return number == 1.0


Command = str | Callable[..., Any] | None


class Parameter:
    """A typed instrument setting or reading with unit, validator and docstring.

    get_cmd: template ("{ch}" placeholders) queried through the owner, or a callable
        `f(owner) -> value` for protocols that are not text.
    set_cmd: template with "{value}" (the formatted value), or a callable `f(owner, value)`.
    unit: the unit of the Python value ("dB", "nm", "mV", "deg", "bool", ...).
    get_parser: text reply -> Python value (default float).
    set_formatter: validated value -> what goes into "{value}" (default str of the value).
    """

    def __init__(
        self,
        get_cmd: Command,
        set_cmd: Command = None,
        *,
        unit: str,
        doc: str,
        validator: Validator | None = None,
        get_parser: Callable[[str], Any] = float,
        set_formatter: Callable[[Any], str] = str,
    ) -> None:
        self.get_cmd = get_cmd
        self.set_cmd = set_cmd
        self.unit = unit
        self.validator = validator
        self.get_parser = get_parser
        self.set_formatter = set_formatter
        self.name = "?"
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if self.get_cmd is None:
            raise AttributeError(f"{self.name} is write-only")
        if callable(self.get_cmd):
            return self.get_cmd(obj)
        return obj._get(self.get_cmd.format(**obj._placeholders()), self.get_parser)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.set_cmd is None:
            raise AttributeError(f"{self.name} is read-only")
        if self.validator is not None:
            try:
                value = self.validator(value, obj)
            except QkdInputError as exc:
                raise QkdInputError(f"{self.name} ({self.unit}): {exc}") from None
        if callable(self.set_cmd):
            self.set_cmd(obj, value)
            return
        obj._set(self.set_cmd.format(value=self.set_formatter(value), **obj._placeholders()))

    def describe(self) -> str:
        """One line for documentation: name, unit, access, allowed values, doc."""
        access = "rw" if self.get_cmd is not None and self.set_cmd is not None else (
            "r" if self.set_cmd is None else "w"
        )
        allowed = f", {self.validator.describe()}" if self.validator is not None else ""
        return f"{self.name} [{self.unit}] ({access}{allowed}): {self.__doc__}"


def parameters_of(cls: type) -> Iterator[Parameter]:
    """Every `Parameter` declared on `cls` or its bases (each name once)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, Parameter) and name not in seen:
                seen.add(name)
                yield attr
