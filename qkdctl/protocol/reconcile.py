"""The reconciliation method interface and the two-party driver `reconcile`.

A method is a frozen `ReconcileMethod(name, alice, bob)` of two role functions that only
talk through a `Channel` (so they can run in two processes)::

    alice(alice_bits, qber_estimate, channel, rng) -> None
    bob(bob_bits, qber_estimate, channel, rng) -> MethodOutcome

A method may also give `responder(alice_bits, qber_estimate, rng)`: Alice's role as an
object whose `handle(msg) -> list[Message]` answers one message (`finished` set at the
end).  Then `reconcile(..., alice_in_thread=False)` runs both roles in one thread over a
`direct_pair` channel (same encoding, MAC, sequencing and accounting, no thread hand-off).
A method may also give `compiled`: both roles, their authenticated channel and the
confirmation in one compiled call (Cascade: `qkdctl.protocol.cascade_session`, SipHash-2-4
MAC), the in-process default when present — same parities, keys, leakage and round trips
as the message path, which stays for TCP and as the reference.

`bob` returns its corrected bits, the number of key-dependent bits disclosed (every
parity / syndrome / revealed bit that crossed the channel: `leaked_bits`) and
method-specific figures in `extra`.  After the method, `reconcile` runs a common
confirmation over the same channel: Bob asks, Alice sends a random 16-byte salt and a
64-bit BLAKE2b tag of her key keyed by it; Bob compares and tells Alice the outcome.  Its 64 bits
are reported as `confirm_bits` (not in `leaked_bits`, so f is the method's alone).  Hence
`success` implies equal keys up to a 2^-64 tag collision; the frame's eps_cor check is the
separate universal-hash verification (`qkdctl.core.verify`).

`reconcile_stream` runs a backlog of keys through `reconcile` a few at a time in worker
threads (the compiled kernels release the GIL): the throughput of the machine for keys
that alone leave cores idle.

Method families list their methods in a `METHODS` dict (Cascade:
`qkdctl.protocol.cascade_roles`); `available_methods()` merges the families in
`_FAMILY_MODULES`.  To add a family, add its module name there (a one-line edit).
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

import numba
import numpy as np

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import Channel, direct_pair, in_process_pair
from qkdctl.protocol.messages import Message

CONFIRM_TAG_BITS = 64
_FAMILY_MODULES = ("qkdctl.protocol.cascade_roles", "qkdctl.protocol.ldpc_roles")


@dataclass
class MethodOutcome:
    """What Bob's role of a method returns."""

    bob_bits: np.ndarray
    leaked_bits: int
    extra: dict = field(default_factory=dict)


class Responder(Protocol):
    """Alice's role as a message handler (optional, for single-thread runs)."""

    finished: bool

    def handle(self, msg: Message) -> list[Message]:
        """Replies to one message from Bob."""


@dataclass(frozen=True)
class ReconcileMethod:
    """A named reconciliation method: Alice's and Bob's role functions."""

    name: str
    alice: Callable[[np.ndarray, float, Channel, np.random.Generator], None]
    bob: Callable[[np.ndarray, float, Channel, np.random.Generator], MethodOutcome]
    responder: Callable[[np.ndarray, float, np.random.Generator], Responder] | None = None
    compiled: Callable[..., "CompiledOutcome"] | None = None


class CompiledOutcome(Protocol):
    """What a method's compiled in-process run returns (both roles and the confirmation)."""

    bob_bits: np.ndarray
    leaked_bits: int
    confirmed: bool
    extra: dict
    messages: int
    bytes: int
    round_trips: int
    auth_key_bytes: int


@dataclass
class ReconcileResult:
    """Outcome and accounting of one reconciled frame (Bob's side of the channel)."""

    method: str
    bob_bits: np.ndarray
    success: bool
    leaked_bits: int
    confirm_bits: int
    messages: int
    round_trips: int
    bytes: int
    auth_key_bytes: int
    extra: dict = field(default_factory=dict)


def available_methods() -> dict[str, ReconcileMethod]:
    """All methods of the installed families, by name."""
    methods: dict[str, ReconcileMethod] = {}
    for module_name in _FAMILY_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        methods.update(module.METHODS)
    return methods


def _named(name: str) -> ReconcileMethod:
    methods = available_methods()
    if name not in methods:
        raise QkdInputError(f"unknown reconciliation method {name!r}; known: {sorted(methods)}")
    return methods[name]


def _key_tag(bits: np.ndarray, salt: bytes) -> bytes:
    packed = np.packbits(bits).tobytes() + len(bits).to_bytes(8, "little")
    return hashlib.blake2b(packed, key=salt, digest_size=CONFIRM_TAG_BITS // 8).digest()


class ConfirmResponder:
    """Alice's side of the confirmation as a message handler."""

    def __init__(self, alice_bits: np.ndarray, rng: np.random.Generator) -> None:
        self.bits = alice_bits
        self.rng = rng
        self.finished = False
        self.verdict: bool | None = None

    def handle(self, msg: Message) -> list[Message]:
        """Answer "confirm/request" with salt and tag; record "confirm/result"."""
        if self.verdict is None and msg.kind == "confirm/request":
            salt = self.rng.bytes(16)
            self.verdict = False
            return [Message("confirm/tag", {"salt": salt, "tag": _key_tag(self.bits, salt)})]
        msg.expect("confirm/result")
        if self.verdict is None:
            raise ProtocolError("confirmation result before request")
        self.verdict = bool(msg.int("ok", 0, 1))
        self.finished = True
        return []


def alice_confirm(alice_bits: np.ndarray, channel: Channel, rng: np.random.Generator) -> bool:
    """Alice's side of the confirmation over `channel`; returns Bob's verdict."""
    responder = ConfirmResponder(alice_bits, rng)
    while not responder.finished:
        for reply in responder.handle(channel.recv()):
            channel.send(reply)
    return bool(responder.verdict)


def bob_confirm(bob_bits: np.ndarray, channel: Channel) -> bool:
    """Bob's side of the confirmation: ask, compare tags, tell Alice, return equality."""
    channel.send(Message("confirm/request", {}))
    msg = channel.recv().expect("confirm/tag")
    salt = msg.bytes("salt")
    if len(salt) != 16:
        raise ProtocolError(f"confirmation salt has {len(salt)} bytes, expected 16")
    ok = _key_tag(bob_bits, salt) == msg.bytes("tag")
    channel.send(Message("confirm/result", {"ok": int(ok)}))
    return ok


class _AliceChain:
    """Method responder, then confirmation responder (single-thread runs)."""

    def __init__(self, first: Responder, confirm: ConfirmResponder) -> None:
        self.first = first
        self.confirm = confirm

    @property
    def finished(self) -> bool:
        return self.confirm.finished

    def handle(self, msg: Message) -> list[Message]:
        if not self.first.finished:
            return self.first.handle(msg)
        return self.confirm.handle(msg)


def _validate_bits(name: str, bits: np.ndarray) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim != 1 or arr.size == 0:
        raise QkdInputError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
            raise QkdInputError(f"{name} must hold integer bits, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)
    if arr.max() > 1:
        raise QkdInputError(f"{name} must hold only 0/1 values")
    return np.ascontiguousarray(arr)


def reconcile(
    method: str | ReconcileMethod,
    alice_bits: np.ndarray,
    bob_bits: np.ndarray,
    qber_estimate: float,
    rng: np.random.Generator,
    channels: tuple[Channel, Channel] | None = None,
    auth_key: bytes | None = None,
    alice_in_thread: bool = True,
    mac: str | None = None,
    compiled: bool | None = None,
) -> ReconcileResult:
    """Reconcile one frame: Alice's role in a thread, Bob's here, then confirmation.

    `channels` is (alice_end, bob_end); by default an in-process pair keyed with
    `auth_key` (pre-shared bytes, >= 32; drawn from `rng` when not given — simulation
    only) and authenticated with `mac` (see `qkdctl.protocol.auth`; None: keyed BLAKE2b).
    alice_in_thread=False (methods with a responder, default channel only) runs
    Alice's responder in this thread over a `direct_pair`.
    `compiled`: run both roles, the channel (SipHash-2-4 MAC) and the confirmation in one
    compiled call (`method.compiled`, e.g. `qkdctl.protocol.cascade_session`); None (the
    default) does so whenever the method has one, no `channels` are given and `mac` is
    None or "siphash-2-4".
    Raises ProtocolError when the peer misbehaves; a frame the method could not
    correct returns success=False.
    """
    a_bits = _validate_bits("alice_bits", alice_bits)
    b_bits = _validate_bits("bob_bits", bob_bits)
    if a_bits.shape != b_bits.shape:
        raise QkdInputError(f"alice_bits and bob_bits differ in length: {a_bits.size} != {b_bits.size}")
    if not 0.0 < qber_estimate < 0.5:
        raise QkdInputError(f"qber_estimate must be in (0, 0.5), got {qber_estimate}")
    if isinstance(method, str):
        method = _named(method)
    alice_rng, bob_rng = rng.spawn(2)
    key = auth_key if auth_key is not None else rng.bytes(64)
    if compiled is None:
        compiled = (method.compiled is not None and channels is None
                    and mac in (None, "siphash-2-4"))
    if compiled:
        if method.compiled is None or channels is not None or mac not in (None, "siphash-2-4"):
            raise QkdInputError(f"{method.name}: compiled runs need a method with a compiled "
                                "path, the default channel and the SipHash-2-4 MAC")
        out = method.compiled(a_bits, b_bits, qber_estimate, KeyPool(key), KeyPool(key),
                              alice_rng, bob_rng)
        return ReconcileResult(
            method=method.name, bob_bits=out.bob_bits, success=out.confirmed,
            leaked_bits=out.leaked_bits, confirm_bits=CONFIRM_TAG_BITS, messages=out.messages,
            round_trips=out.round_trips, bytes=out.bytes, auth_key_bytes=out.auth_key_bytes,
            extra=out.extra)
    mac = "blake2b" if mac is None else mac
    if not alice_in_thread:
        if channels is not None or method.responder is None:
            raise QkdInputError(f"{method.name}: single-thread runs need a responder method "
                                "and the default channel")
        chain = _AliceChain(method.responder(a_bits, qber_estimate, alice_rng),
                            ConfirmResponder(a_bits, alice_rng))
        _, bob_ch = direct_pair(KeyPool(key), KeyPool(key), chain, mac)
        outcome = method.bob(b_bits, qber_estimate, bob_ch, bob_rng)
        return _result(method, outcome, bob_confirm(outcome.bob_bits, bob_ch), bob_ch)
    if channels is None:
        channels = in_process_pair(KeyPool(key), KeyPool(key), mac)
    alice_ch, bob_ch = channels
    alice_error: list[BaseException] = []

    def run_alice() -> None:
        try:
            method.alice(a_bits, qber_estimate, alice_ch, alice_rng)
            alice_confirm(a_bits, alice_ch, alice_rng)
        except BaseException as exc:  # reported to the caller below
            alice_error.append(exc)
            alice_ch.abort(str(exc))
            alice_ch.close()

    thread = threading.Thread(target=run_alice, name="alice-role", daemon=True)
    thread.start()
    try:
        outcome = method.bob(b_bits, qber_estimate, bob_ch, bob_rng)
        ok = bob_confirm(outcome.bob_bits, bob_ch)
    except BaseException as exc:
        bob_ch.abort(str(exc))
        bob_ch.close()
        thread.join()
        if alice_error and not isinstance(exc, ProtocolError):
            raise alice_error[0] from exc
        raise
    thread.join()
    if alice_error:
        raise alice_error[0]
    return _result(method, outcome, ok, bob_ch)


def reconcile_stream(
    method: str | ReconcileMethod,
    keys: Iterable[tuple],
    rng: np.random.Generator,
    workers: int = 2,
    **options,
) -> Iterator[ReconcileResult]:
    """Reconcile a stream of keys, `workers` at a time; yield their results in key order.

    `keys` yields (alice_bits, bob_bits, qber_estimate) or (alice_bits, bob_bits,
    qber_estimate, auth_key): each key runs `reconcile(method, ..., options)` in a worker
    thread with its own child of `rng`, its own channel and its own `auth_key` (fresh key
    material per key, as for `reconcile`; drawn from the child rng when not given:
    simulation only), and NUMBA_NUM_THREADS // workers numba threads.  The compiled
    kernels release the GIL, so keys decode side by side: with a backlog of keys this is
    the throughput of the machine, where one key alone may leave cores idle (e.g. one LDPC
    frame per key, or a frame left alone in a blind round).  At most 2 x workers keys are
    read ahead.  An exception of a key is raised when its result is due (the keys in
    flight finish first).
    """
    if workers < 1:
        raise QkdInputError(f"workers must be >= 1, got {workers}")
    if {"channels", "auth_key"} & options.keys():
        raise QkdInputError("reconcile_stream gives every key its own channel; pass a key's "
                            "auth_key as the fourth item of its tuple")
    if isinstance(method, str):
        method = _named(method)
    threads = max(1, numba.config.NUMBA_NUM_THREADS // workers)

    def one(key: tuple, child: np.random.Generator) -> ReconcileResult:
        numba.set_num_threads(threads)  # per thread: the workers share the cores
        if len(key) not in (3, 4):
            raise QkdInputError("a key is (alice_bits, bob_bits, qber_estimate[, auth_key])")
        auth_key = key[3] if len(key) == 4 else None
        return reconcile(method, key[0], key[1], key[2], child, auth_key=auth_key, **options)

    with ThreadPoolExecutor(workers, thread_name_prefix="reconcile") as pool:
        pending: deque[Future] = deque()
        for key in keys:
            pending.append(pool.submit(one, key, rng.spawn(1)[0]))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _result(method: ReconcileMethod, outcome: MethodOutcome, ok: bool,
            bob_ch: Channel) -> ReconcileResult:
    stats = bob_ch.stats
    return ReconcileResult(
        method=method.name,
        bob_bits=outcome.bob_bits,
        success=ok,
        leaked_bits=outcome.leaked_bits,
        confirm_bits=CONFIRM_TAG_BITS,
        messages=stats.messages_sent + stats.messages_received,
        round_trips=stats.round_trips,
        bytes=stats.bytes_sent + stats.bytes_received,
        auth_key_bytes=bob_ch.auth_key_bytes,
        extra=outcome.extra,
    )


def binary_entropy(p: float) -> float:
    """h(p) in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-p * np.log2(p) - (1 - p) * np.log2(1 - p))


def efficiency(leaked_bits: int, n: int, qber_true: float) -> float:
    """Reconciliation efficiency f = leaked_bits / (n h(qber_true)); inf when h = 0."""
    h = binary_entropy(qber_true)
    return float("inf") if h == 0.0 else leaked_bits / (n * h)
