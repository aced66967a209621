"""Typed exceptions shared by the whole stack.

Every error a user can cause (bad config, bad file, bad arguments) is a
`QkdInputError`; the CLI turns it into one line and exit code 2.  Instrument
and transport failures are `InstrumentError` (exit 3).  Anything that must stop
key from being written is a `SecurityAbort` (exit 4).  Messages never contain
key bits.
"""


class QkdError(Exception):
    """Base class of every qkdctl error."""


class QkdInputError(QkdError, ValueError):
    """Bad input: arrays, parameters, files or arguments (exit code 2)."""


class ConfigError(QkdInputError):
    """A lab config is invalid; the message names file, key, value and what is allowed."""


class InstrumentError(QkdError):
    """An instrument or its transport failed: timeout, garbled reply, disconnect (exit 3)."""


class ProtocolError(QkdError):
    """The classical post-processing channel misbehaved: bad MAC, replay, wrong message."""


class ReconciliationError(QkdError):
    """Error correction did not converge for a frame; the frame is discarded."""


class SecurityAbort(QkdError):
    """A security check failed (QBER, verification, decoy bounds, key length <= 0).

    No key is written for the block (exit code 4 if the run is aborted by policy).
    """
