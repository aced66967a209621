"""A small SCPI parser for emulated instruments (IEEE 488.2 / SCPI-1999 habits).

Headers match in short or long form, case-insensitively, with numeric suffixes
(`:INPut2:ATTenuation` = `:inp2:att`); optional nodes are written in brackets
in a pattern (``":INPut#[:CHANnel#]:ATTenuation"``, ``#`` = takes a suffix,
default 1).  Several message units per line are separated by ``;``; a unit
without a leading colon continues the previous unit's path.  Errors go to an
error queue with the standard SCPI codes; an erroneous query sends no reply.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Callable

# Standard SCPI error codes and messages (SCPI-1999 vol. 2, ch. 21).
NO_ERROR = (0, "No error")
COMMAND_ERROR = (-100, "Command error")
SYNTAX_ERROR = (-102, "Syntax error")
DATA_TYPE_ERROR = (-104, "Data type error")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
MISSING_PARAMETER = (-109, "Missing parameter")
UNDEFINED_HEADER = (-113, "Undefined header")
HEADER_SUFFIX_OUT_OF_RANGE = (-114, "Header suffix out of range")
INVALID_SUFFIX = (-131, "Invalid suffix")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER_VALUE = (-224, "Illegal parameter value")
QUEUE_OVERFLOW = (-350, "Queue overflow")

ERROR_QUEUE_DEPTH = 30


class ScpiError(Exception):
    """Raised by a command handler; carries a SCPI (code, message)."""

    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(f"{error[0]},{error[1]}")
        self.error = error


@dataclass(frozen=True)
class Node:
    """One header node of a command pattern."""

    long: str
    short: str
    suffix: bool
    optional: bool

    def matches(self, name: str) -> bool:
        up = name.upper()
        return up == self.short or up == self.long.upper()


def parse_pattern(pattern: str) -> tuple[Node, ...]:
    """Turn ":INPut#[:CHANnel#]:ATTenuation" into nodes."""
    nodes = []
    for optional, body in re.findall(r"(\[)?:([A-Za-z]+#?)\]?", pattern):
        long = body.rstrip("#")
        short = "".join(c for c in long if c.isupper() or c.isdigit())
        nodes.append(Node(long, short, body.endswith("#"), bool(optional)))
    return tuple(nodes)


def _match(nodes: list[tuple[str, int | None]], pattern: tuple[Node, ...]) -> list[int] | None:
    """Suffix values (one per suffixed pattern node) when nodes match pattern, else None."""
    if not pattern:
        return [] if not nodes else None
    head, rest = pattern[0], pattern[1:]
    if nodes and head.matches(nodes[0][0]):
        name, suffix = nodes[0]
        if suffix is None or head.suffix:
            tail = _match(nodes[1:], rest)
            if tail is not None:
                return ([1 if suffix is None else suffix] if head.suffix else []) + tail
    if head.optional:
        tail = _match(nodes, rest)
        if tail is not None:
            return ([1] if head.suffix else []) + tail
    return None


Handler = Callable[[list[int], str], str | None]


def format_nr3(value: float) -> str:
    """SCPI NR3 reply in the Keysight style: +2.50000000E+000."""
    mantissa, exponent = f"{value:+.8E}".split("E")
    return f"{mantissa}E{int(exponent):+04d}"


def parse_number(text: str, units: dict[str, float], keywords: dict[str, float]) -> float:
    """A numeric parameter with an optional unit suffix, or a MIN/MAX/DEF keyword."""
    text = text.strip()
    if not text:
        raise ScpiError(MISSING_PARAMETER)
    key = text.upper()
    for word, value in keywords.items():
        if key in (word, word[:3]):
            return value
    m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)", text)
    if m is None:
        raise ScpiError(DATA_TYPE_ERROR)
    unit = m.group(2).upper()
    if unit not in units:
        raise ScpiError(INVALID_SUFFIX)
    return float(m.group(1)) * units[unit]


class ScpiDevice:
    """Command table + error queue; `execute(line)` returns the reply line or None."""

    def __init__(self) -> None:
        self._commands: list[tuple[tuple[Node, ...], bool, Handler]] = []
        self._common: dict[str, Handler] = {}
        self.errors: deque[tuple[int, str]] = deque()

    def add(self, pattern: str, query: bool, handler: Handler) -> None:
        """Register handler(suffixes, argument_text) for a header pattern (query or set form)."""
        self._commands.append((parse_pattern(pattern), query, handler))

    def add_common(self, header: str, handler: Handler) -> None:
        """Register a common command such as '*IDN?'."""
        self._common[header.upper()] = handler

    def push_error(self, error: tuple[int, str]) -> None:
        """Append to the error queue; a full queue ends with -350 Queue overflow."""
        if len(self.errors) >= ERROR_QUEUE_DEPTH:
            self.errors[-1] = QUEUE_OVERFLOW
            return
        self.errors.append(error)

    def pop_error(self) -> str:
        """The oldest error as SCPI text, or +0,"No error"."""
        code, message = self.errors.popleft() if self.errors else NO_ERROR
        return f'{code:+d},"{message}"'

    def _lookup(self, header: str) -> tuple[Handler, list[int]]:
        query = header.endswith("?")
        body = header[:-1] if query else header
        if body.startswith("*"):
            handler = self._common.get(header.upper())
            if handler is None:
                raise ScpiError(UNDEFINED_HEADER)
            return handler, []
        nodes = []
        for part in body.lstrip(":").split(":"):
            m = re.fullmatch(r"([A-Za-z]+)(\d*)", part)
            if m is None:
                raise ScpiError(SYNTAX_ERROR)
            nodes.append((m.group(1), int(m.group(2)) if m.group(2) else None))
        for pattern, is_query, handler in self._commands:
            if is_query != query:
                continue
            suffixes = _match(nodes, pattern)
            if suffixes is not None:
                return handler, suffixes
        raise ScpiError(UNDEFINED_HEADER)

    def execute(self, line: str) -> str | None:
        """Run every message unit of one line; the joined query replies, or None."""
        replies: list[str] = []
        path = ""
        for unit in line.split(";"):
            unit = unit.strip()
            if not unit:
                continue
            header, _, argument = unit.partition(" ")
            if not header.startswith((":", "*")) and path:
                header = path + ":" + header
            if not header.startswith("*"):
                absolute = header if header.startswith(":") else ":" + header
                path = absolute.rsplit(":", 1)[0]
            try:
                handler, suffixes = self._lookup(header)
                reply = handler(suffixes, argument.strip())
            except ScpiError as exc:
                self.push_error(exc.error)
                if -199 <= exc.error[0] <= -100:
                    break
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None
