"""Alice and Bob as two processes over the authenticated TCP channel (`qkdctl run --role`).

Alice's process opens only her instruments ([instruments.alice], her record source, and
[instruments.voa], her intensities), listens on --peer HOST:PORT and answers.  Bob's
process opens the tagger and the polarization controller, connects, and runs the block
loop of `qkdctl.engine.Engine` with `BobProcessor` in place of `process_block` (tuners,
detectors and the run database are his).  Every message is typed and validated on
receipt; a malformed one raises `ProtocolError`, which aborts the channel (nothing more
is disclosed) and ends both processes with exit code 3.

Per block (Bob asks, Alice answers; "block/abort" from Bob may replace any request):

    sift/request  block_id, Bob's clicked slots, shift guess, sync divider
    sift/disclose shift, her record length, basis at each clicked slot, every slot's
                  intensity class (2 bit planes), pulses sent per basis x intensity
    sift/keep     Z and X sifted slots        -> estimate/bits: her bits at the clicked
                  slots that are not Z-sifted (X test basis and basis mismatches; no key)
    estimate/z_sample positions (only without a past-Z prior)
                                             -> estimate/z_bits: her Z bits there
    reconcile/start method, QBER             -> the method's roles, then confirmation
    verify/request                           -> verify/tag: seed and her tag (eps_cor)
    key/counts    Z detections and corrected errors, X detections and errors per
                  intensity, leaked bits     -> key/length: her finite-key length
    key/amplify   length, Toeplitz seed, key id (after Bob's detectors passed the block)
                                             -> key/stored once her key is fsynced

Reconciliation is sized as in `qkdctl.pipeline`: from the past-Z prior, which both sides
keep from the last block's agreed key/counts (corrected Z errors / Z detections) and drop
whenever a block stops before them; else from a sample of Z_SAMPLE_BITS of this block's
Z bits, positions drawn by Bob exactly as `process_block` draws them, Alice's bits
disclosed and counted as leaked (the bits stay in the key, as in the pipeline).

Crash-safety order as in the engine: Alice's key is stored before Bob's, and Bob's key
before his block row.  The intensities are Alice's: Bob's bench reports the VOA
parameters of the config and refuses to change them (no intensity tuner in this mode).
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.config import LabConfig
from qkdctl.core.amplify import toeplitz_hash
from qkdctl.core.constants import BASIS_X, BASIS_Z
from qkdctl.core.errors import ConfigError, InstrumentError, ProtocolError, QkdInputError
from qkdctl.core.estimate import estimate
from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.sift import pulses_sent, sift
from qkdctl.core.tags import gate, recover_clock
from qkdctl.core.telemetry import block_telemetry
from qkdctl.core.timing import SlotAlignment
from qkdctl.core.verify import draw_seed, hash_plan, keys_match, verification_tag
from qkdctl.engine import Engine, RunSummary
from qkdctl.hardware import Acquisition, intensity_params
from qkdctl.pipeline import (
    TELEMETRY_WINDOWS,
    Z_SAMPLE_BITS,
    BlockOutcome,
    BlockSettings,
    align_or_guess,
    choose_method,
    ec_qber,
    key_length_of,
    report_correction,
    report_estimate,
    report_key_length,
    report_sift,
    shift_guess,
)
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import Channel
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import CONFIRM_TAG_BITS, alice_confirm, available_methods, bob_confirm
from qkdctl.protocol.tcp import accept, connect, listen
from qkdctl.store.keystore import KeyStore
from qkdctl.wiring import LiveHardware, open_alice_host, open_polarization, open_tagger, open_voa

AUTH_KEY_MIN_BYTES = 32
STEP_TIMEOUT_S = 120.0  # one reply within a block
BLOCK_TIMEOUT_S = 600.0  # Alice waiting for Bob's next block (acquisition, gate search)
CONNECT_TIMEOUT_S = 60.0
MAX_RECORD_SLOTS = 1 << 34
ROLE_INSTRUMENTS = {"alice": ("alice", "voa"), "bob": ("tagger", "polarization")}
_KEY_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def read_auth_key(path: str | Path) -> bytes:
    """Pre-shared authentication key from a file: hex text or raw bytes, >= 32 bytes."""
    p = Path(path)
    if not p.is_file():
        raise QkdInputError(f"--auth-key-file {path}: no such file")
    data = p.read_bytes()
    text = data.strip()
    key = data
    if text and len(text) % 2 == 0 and re.fullmatch(rb"[0-9a-fA-F]+", text):
        key = bytes.fromhex(text.decode("ascii"))
    if len(key) < AUTH_KEY_MIN_BYTES:
        raise QkdInputError(f"--auth-key-file {path}: key has {len(key)} bytes; at least "
                            f"{AUTH_KEY_MIN_BYTES} are needed (hex text or raw bytes)")
    return key


def parse_peer(peer: str) -> tuple[str, int]:
    """(host, port) of --peer HOST:PORT."""
    host, sep, port = peer.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QkdInputError(f"--peer {peer!r}: expected HOST:PORT with a port in 1..65535")
    return host, int(port)


def _role_instruments(cfg: LabConfig, role: str) -> dict:
    """The instruments one role opens; 'embedded' is refused (the bench is shared)."""
    inst = cfg.require_bench()
    named = {name: getattr(inst, name) for name in ROLE_INSTRUMENTS[role]}
    embedded = sorted(n for n, i in named.items() if i is not None and i.resource == "embedded")
    if embedded:
        raise ConfigError(
            f"{cfg.source}: --role {role}: [instruments.{embedded[0]}] resource 'embedded' cannot be shared "
            "by two processes; start the simulator with `qkdctl sim serve CONFIG` and put its resource "
            "strings in the two configs")
    return named


# ---- messages ----------------------------------------------------------------------------

def _bits(msg: Message, name: str, length: int) -> np.ndarray:
    arr = msg.array(name, np.uint8, length)
    if arr.size and arr.max() > 1:
        raise ProtocolError(f"field {name!r} of {msg.kind!r} holds values other than 0/1")
    return arr


def _slots(msg: Message, name: str, within: np.ndarray | None = None) -> np.ndarray:
    arr = msg.array(name, np.int64)
    if arr.size > 1 and np.any(np.diff(arr) <= 0):
        raise ProtocolError(f"field {name!r} of {msg.kind!r} is not strictly increasing")
    if within is not None and not np.all(np.isin(arr, within)):
        raise ProtocolError(f"field {name!r} of {msg.kind!r} names slots Bob did not report")
    return arr


def _counts(msg: Message, name: str) -> np.ndarray:
    arr = msg.array(name, np.int64, 3)
    if np.any(arr < 0):
        raise ProtocolError(f"field {name!r} of {msg.kind!r} holds negative counts")
    return arr


def _z_sample(msg: Message, n_z: int) -> np.ndarray:
    """Positions (in the Z-sifted order) of a requested Z sample: exactly
    min(Z_SAMPLE_BITS, n_z) of them, strictly increasing, inside [0, n_z)."""
    pos = msg.array("positions", np.int64, min(Z_SAMPLE_BITS, n_z))
    if pos.size and (pos[0] < 0 or pos[-1] >= n_z or np.any(np.diff(pos) <= 0)):
        raise ProtocolError(f"field 'positions' of {msg.kind!r} is not a strictly increasing set "
                            f"of positions in [0, {n_z})")
    return pos


def past_z_qber(n_key: np.ndarray, m_key: np.ndarray) -> float | None:
    """Past-Z prior from a block's agreed key/counts: corrected Z errors / Z detections
    (None without detections).  Alice and Bob compute it from the same integers."""
    n = int(np.sum(n_key))
    return int(np.sum(m_key)) / n if n > 0 else None


def _hello(settings: BlockSettings) -> Message:
    return Message("session/hello", {"mu": np.asarray(settings.mu, dtype=np.float64),
                                     "p_mu": np.asarray(settings.p_mu, dtype=np.float64),
                                     "eps_sec": float(settings.eps_sec), "eps_cor": float(settings.eps_cor),
                                     "sync_divider": int(settings.sync_divider)})


def _check_hello(msg: Message, settings: BlockSettings) -> None:
    mine = _hello(settings).fields
    msg.expect("session/hello")
    for name in ("mu", "p_mu"):
        if not np.allclose(msg.array(name, np.float64, 3), mine[name], rtol=1e-12, atol=0):
            raise ProtocolError(f"peer's {name} differ from this config's: the two configs must agree")
    for name in ("eps_sec", "eps_cor"):
        if msg.float(name) != mine[name]:
            raise ProtocolError(f"peer's {name} differs from this config's: the two configs must agree")
    if msg.int("sync_divider") != mine["sync_divider"]:
        raise ProtocolError("peer's sync_divider differs from this config's: the two configs must agree")


# ---- Alice -----------------------------------------------------------------------------

class AliceRole:
    """Alice's side: answers Bob's requests for each block from her record source."""

    def __init__(self, host, settings: BlockSettings, store: KeyStore, rng: np.random.Generator) -> None:
        self.host = host
        self.settings = settings
        self.store = store
        self.rng = rng
        self.summary = RunSummary(run_id="alice", out_dir=str(store.dir.parent.parent), seed=0)
        self.qber_prior: float | None = None  # past-Z prior, the same as Bob's

    def serve(self, ch: Channel) -> RunSummary:
        """Handshake, then one block per "sift/request" until Bob's "run/end" (its summary:
        blocks answered, blocks without key, secret bits stored)."""
        _check_hello(ch.recv(STEP_TIMEOUT_S), self.settings)
        ch.send(Message("session/ok", {}))
        while True:
            msg = ch.recv(BLOCK_TIMEOUT_S).expect("sift/request", "run/end")
            if msg.kind == "run/end":
                self.summary.status = "ok"
                return self.summary
            self.summary.blocks += 1
            self.summary.blocks_aborted += 1  # until a key is stored
            self._block(ch, msg)

    def _next(self, ch: Channel, kind: str) -> Message | None:
        msg = ch.recv(STEP_TIMEOUT_S).expect(kind, "block/abort")
        return None if msg.kind == "block/abort" else msg

    def _block(self, ch: Channel, req: Message) -> None:
        s = self.settings
        slots = _slots(req, "slots")
        if req.int("sync_divider") != s.sync_divider:
            raise ProtocolError("sift/request: sync divider differs from Alice's config")
        rec = self.host.get_record(req.int("block_id", 0))
        al = align_or_guess(slots, rec.intensity, s.mu, req.int("guess"), s.sync_divider)
        idx = slots + al.shift
        inside = (idx >= 0) & (idx < len(rec))
        basis = np.zeros(slots.size, dtype=np.uint8)
        basis[inside] = rec.basis[idx[inside]]
        ch.send(Message("sift/disclose", {
            "shift": al.shift, "score": al.score, "runner_up": al.runner_up, "n_slots": len(rec),
            "basis": basis, "intensity_lo": np.packbits(rec.intensity & 1),
            "intensity_hi": np.packbits(rec.intensity >> 1),
            "pulses": pulses_sent(rec).ravel()}))
        msg = self._next(ch, "sift/keep")
        if msg is None:
            return
        clicked = slots[inside]
        z = _slots(msg, "z", clicked)
        x = _slots(msg, "x", clicked)
        if np.any(rec.basis[z + al.shift] != BASIS_Z) or np.any(rec.basis[x + al.shift] != BASIS_X):
            raise ProtocolError("sift/keep names slots where Alice's basis differs")
        z_bits = rec.bit[z + al.shift]
        other = clicked[~np.isin(clicked, z)]
        ch.send(Message("estimate/bits", {"bits": rec.bit[other + al.shift]}))
        prior, self.qber_prior = self.qber_prior, None  # until this block's key/counts
        z_disclosed = 0
        if prior is None:
            msg = self._next(ch, "estimate/z_sample")
            if msg is None:
                return
            positions = _z_sample(msg, z_bits.size)
            z_disclosed = positions.size
            ch.send(Message("estimate/z_bits", {"bits": z_bits[positions]}))
        msg = self._next(ch, "reconcile/start")
        if msg is None:
            return
        methods = available_methods()
        name = msg.bytes("method").decode("ascii", "replace")
        q = msg.float("qber")
        if name not in methods or not 0.0 < q < 0.5:
            raise ProtocolError(f"reconcile/start: unknown method {name!r} or QBER {q} outside (0, 0.5)")
        if prior is not None and q != ec_qber(math.nan, prior):
            raise ProtocolError(f"reconcile/start: QBER {q} is not the past-Z prior's {ec_qber(math.nan, prior)}")
        methods[name].alice(z_bits, q, ch, self.rng)
        if not alice_confirm(z_bits, ch, self.rng):
            ch.recv(STEP_TIMEOUT_S).expect("block/abort")
            return
        msg = self._next(ch, "verify/request")
        if msg is None:
            return
        seed = draw_seed(z_bits.size, s.eps_cor, self.rng)
        tag, _ = verification_tag(z_bits, seed, s.eps_cor)
        ch.send(Message("verify/tag", {"seed": seed, "tag": tag}))
        msg = self._next(ch, "key/counts")
        if msg is None:
            return
        n_key = _counts(msg, "n_key")
        n_test = _counts(msg, "n_test")
        mine = [np.bincount(rec.intensity[sl + al.shift], minlength=3) for sl in (z, x)]
        if np.any(n_key != mine[0]) or np.any(n_test != mine[1]):
            raise ProtocolError("key/counts: detection counts differ from Alice's sifted slots")
        m_key = _counts(msg, "m_key")
        if np.any(m_key > n_key):
            raise ProtocolError("key/counts: more corrected errors than Z detections")
        kl = key_length_of(n_key, m_key, n_test, _counts(msg, "m_test"),
                           msg.int("leaked_bits", z_disclosed + CONFIRM_TAG_BITS), s)
        self.qber_prior = past_z_qber(n_key, m_key)
        length = kl.key_length_bits if kl.has_key else 0
        ch.send(Message("key/length", {"length": int(length)}))
        msg = self._next(ch, "key/amplify")
        if msg is None:
            return
        if msg.int("length") != length or length <= 0:
            raise ProtocolError(f"key/amplify: length {msg.int('length')} differs from Alice's {length}")
        pa_seed = _bits(msg, "seed", z_bits.size + length - 1)
        key_id = msg.bytes("key_id").decode("ascii", "replace")
        if not _KEY_ID.match(key_id):
            raise ProtocolError("key/amplify: malformed key id")
        self.store.add(toeplitz_hash(z_bits, pa_seed, length), key_id=key_id)
        self.summary.blocks_aborted -= 1
        self.summary.secret_bits += length
        ch.send(Message("key/stored", {}))


# ---- Bob -------------------------------------------------------------------------------

class BobProcessor:
    """Bob's side of each block, as the engine's block processor (see qkdctl.engine)."""

    sides = ("bob",)

    def __init__(self, channel: Channel) -> None:
        self.ch = channel
        self._pending: tuple[np.ndarray, int] | None = None
        self.qber_prior: float | None = None  # past-Z prior, the same as Alice's

    def hello(self, settings: BlockSettings) -> None:
        """Check that Alice's config agrees on the public protocol settings."""
        self.ch.send(_hello(settings))
        self.ch.recv(STEP_TIMEOUT_S).expect("session/ok")

    def process(self, acq: Acquisition, settings: BlockSettings, rng: np.random.Generator,
                auth_key: bytes) -> BlockOutcome:
        """Post-process one block with Alice over the channel; the key is stored by `store`."""
        ch = self.ch
        self._pending = None
        tags = acq.tags
        rep = BlockReport(block_id=acq.block_id, n_tags=len(tags))
        rep.stage_seconds = stage = {}
        t0 = [time.perf_counter()]

        def lap(name: str) -> None:
            now = time.perf_counter()
            stage[name], t0[0] = now - t0[0], now

        def abort(reason: str) -> BlockOutcome:
            rep.status, rep.abort_reason = "aborted", reason
            return BlockOutcome(rep)

        clock = recover_clock(tags, settings.sync_channel, settings.sync_divider, settings.nominal_sync_period_ps)
        gated = gate(tags, clock, settings.gate)
        slots = np.unique(gated.slot)
        ch.send(Message("sift/request", {"block_id": int(acq.block_id), "slots": slots,
                                         "guess": shift_guess(tags, clock), "sync_divider": clock.sync_divider}))
        msg = ch.recv(STEP_TIMEOUT_S).expect("sift/disclose")
        n = msg.int("n_slots", 1, MAX_RECORD_SLOTS)
        shift = msg.int("shift")
        basis = _bits(msg, "basis", slots.size)
        planes = [np.unpackbits(msg.array(f"intensity_{p}", np.uint8, (n + 7) // 8), count=n) for p in ("lo", "hi")]
        intensity = planes[0] | (planes[1] << 1)
        if intensity.max() > 2:
            raise ProtocolError("sift/disclose: intensity class 3 does not exist")
        pulses = msg.array("pulses", np.int64, 6).reshape(2, 3)
        idx = slots + shift
        inside = (idx >= 0) & (idx < n)
        rec_basis = np.zeros(n, dtype=np.uint8)
        rec_basis[idx[inside]] = basis[inside]
        public = AliceRecord(rec_basis, np.zeros(n, dtype=np.uint8), intensity, first_slot=-shift)
        alignment = SlotAlignment(shift, msg.float("score"), msg.float("runner_up"))
        rep.telemetry = block_telemetry(gated, intensity, -shift, min(TELEMETRY_WINDOWS, n))
        lap("gate")
        sifted = replace(sift(gated, public, rng), pulses_sent=pulses)
        report_sift(rep, tags, clock, gated, sifted, alignment, None)
        z = sifted.z
        ch.send(Message("sift/keep", {"z": z.slot, "x": sifted.x.slot}))
        prior, self.qber_prior = self.qber_prior, None  # until this block's key/counts
        sample_count = None if prior is not None else Z_SAMPLE_BITS
        if prior is None:  # the positions process_block's estimate draws (on a copy of rng)
            positions = estimate(sifted, copy.deepcopy(rng), disclose_x=True,
                                 sample_count=sample_count).disclosed_index[BASIS_Z]
            ch.send(Message("estimate/z_sample", {"positions": positions}))
        lap("sift")
        clicked = slots[inside]
        other = clicked[~np.isin(clicked, z.slot)]
        other_bits = _bits(ch.recv(STEP_TIMEOUT_S).expect("estimate/bits"), "bits", other.size)
        x_bits = other_bits[np.searchsorted(other, sifted.x.slot)]
        sifted = replace(sifted, x=replace(sifted.x, alice_bit=x_bits))
        if prior is None:  # Alice's bits at the sample; her other Z bits stay unknown (estimate reads none)
            z_alice = z.bob_bit.copy()
            z_alice[positions] = _bits(ch.recv(STEP_TIMEOUT_S).expect("estimate/z_bits"), "bits", positions.size)
            sifted = replace(sifted, z=replace(z, alice_bit=z_alice))
        est = estimate(sifted, rng, disclose_x=True, sample_count=sample_count)
        z_disclosed = int(est.sampled[BASIS_Z].sum())
        reason = report_estimate(rep, est, settings)
        lap("estimate")
        if reason:
            return abort(reason)

        q = ec_qber(float(est.qber_basis[BASIS_Z]), prior)
        method = choose_method(q) if settings.method == "auto" else settings.method
        ch.send(Message("reconcile/start", {"method": method.encode("ascii"), "qber": q}))
        trips0 = ch.stats.round_trips
        outcome = available_methods()[method].bob(z.bob_bit, q, ch, rng)
        ok = bob_confirm(outcome.bob_bits, ch)
        lap("reconcile")
        wrong, reason = report_correction(rep, z, outcome.bob_bits, method,
                                          outcome.leaked_bits + CONFIRM_TAG_BITS + z_disclosed,
                                          outcome.leaked_bits, ch.stats.round_trips - trips0, ok, settings)
        if ok:  # Alice's bits of every clicked slot are now known to Bob: the full click matrix
            bits = np.zeros(n, dtype=np.uint8)
            bits[other + shift] = other_bits
            bits[z.slot + shift] = outcome.bob_bits
            rep.counts["click_matrix"] = click_matrix(gated, replace(public, bit=bits)).tolist()
        if reason:
            return abort(reason)
        ch.send(Message("verify/request", {}))
        msg = ch.recv(STEP_TIMEOUT_S).expect("verify/tag")
        plan = hash_plan(z.slot.size, settings.eps_cor)
        seed = msg.array("seed", np.uint64, plan.repetitions)
        if plan.field_bits < 64 and np.any(seed >> np.uint64(plan.field_bits)):
            raise ProtocolError("verify/tag: seed elements outside the hash field")
        tag_b, tag_bits = verification_tag(outcome.bob_bits, seed, settings.eps_cor)
        rep.leaked_bits += tag_bits
        rep.verified = keys_match(msg.array("tag", np.uint64, plan.repetitions), tag_b)
        lap("verify")
        if not rep.verified:
            return abort("verification failed: hash tags differ after reconciliation")

        n_key = np.bincount(z.intensity, minlength=3).astype(np.int64)
        m_key = np.bincount(z.intensity[wrong], minlength=3).astype(np.int64)
        ch.send(Message("key/counts", {
            "n_key": n_key, "m_key": m_key,
            "n_test": est.sampled[BASIS_X].astype(np.int64), "m_test": est.errors[BASIS_X].astype(np.int64),
            "leaked_bits": int(rep.leaked_bits)}))
        self.qber_prior = past_z_qber(n_key, m_key)
        alice_length = ch.recv(STEP_TIMEOUT_S).expect("key/length").int("length", 0)
        kl, reason = report_key_length(rep, z.intensity, wrong, est, settings)
        lap("keyrate")
        if reason:
            return abort(reason)
        if alice_length != kl.key_length_bits:
            return abort(f"key length differs: Alice {alice_length}, Bob {kl.key_length_bits} bits")
        pa_seed = rng.integers(0, 2, z.slot.size + kl.key_length_bits - 1, dtype=np.uint8)
        bob_key = toeplitz_hash(outcome.bob_bits, pa_seed, kl.key_length_bits)
        lap("amplify")
        rep.key_bits = int(kl.key_length_bits)
        self._pending = (pa_seed, int(kl.key_length_bits))
        return BlockOutcome(rep, None, bob_key)

    def store(self, out: BlockOutcome, stores: list[KeyStore]) -> str:
        """Alice amplifies and stores under Bob's new key id, acknowledges; then Bob stores."""
        if self._pending is None:
            raise ProtocolError("no amplification pending for this block")
        seed, length = self._pending
        self._pending = None
        key_id = str(uuid.uuid4())
        self.ch.send(Message("key/amplify", {"length": length, "seed": seed, "key_id": key_id.encode("ascii")}))
        self.ch.recv(STEP_TIMEOUT_S).expect("key/stored")
        stores[0].add(out.bob_key, key_id=key_id)
        return key_id

    def discard(self, report: BlockReport) -> None:
        """Tell Alice the block makes no key (she drops it)."""
        self._pending = None
        self.ch.send(Message("block/abort", {"reason": report.abort_reason.encode("utf-8")[:1000]}))


# ---- the two processes -----------------------------------------------------------------

class BobHardware(LiveHardware):
    """Bob's bench: the tagger and the polarization controller; Alice's VOA parameters are
    the config's and read-only here (Acquisition.alice is None: her record stays with her)."""

    def __init__(self, tagger, controller, calibration, voa_params: Mapping[str, float], mu_at_0db: float,
                 gate: Mapping[str, float]) -> None:
        super().__init__(tagger, None, None, controller, calibration, mu_at_0db=mu_at_0db, gate=gate)
        self._params.update(voa_params)

    def apply(self, params: Mapping[str, float]) -> None:
        voa = sorted(k for k in params if k.startswith("voa."))
        if voa:
            raise QkdInputError(f"two-process mode: the intensities are Alice's; Bob cannot set {voa}")
        super().apply(params)

    def acquire(self, duration_s: float) -> Acquisition:
        params = self.params()
        tags = self.tagger.read_block(duration_s)
        return Acquisition(int(tags.meta.get("block_id", 0)), tags, None, params)


def open_bob_bench(cfg: LabConfig) -> BobHardware:
    """Bob's instruments of the config (no 'embedded' resources)."""
    named = _role_instruments(cfg, "bob")
    tagger = open_tagger(named["tagger"])
    controller = calibration = None
    try:
        if named["polarization"] is not None:
            controller, calibration = open_polarization(named["polarization"])
    except BaseException:
        tagger.close()
        raise
    gate = {"gate.width_ps": cfg.timing.gate_width_ps}
    if cfg.timing.gate_offset_ps is not None:
        gate["gate.offset_ps"] = cfg.timing.gate_offset_ps
    return BobHardware(tagger, controller, calibration,
                       intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db),
                       cfg.engine.mu_at_0db, gate)


def _connect_retrying(host: str, port: int, pool_key: bytes) -> Channel:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return connect(host, port, KeyPool(pool_key), timeout_s=STEP_TIMEOUT_S)
        except ProtocolError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _channel_failure(role: str, exc: ProtocolError) -> InstrumentError:
    return InstrumentError(f"{role}: classical channel failed: {exc}")


def run_alice(cfg: LabConfig, out_dir: Path, peer: str, auth_key: bytes, seed: int | None) -> RunSummary:
    """Alice's process: open her instruments, set the intensities, listen on `peer`, answer Bob."""
    from qkdctl.runner import block_settings

    settings = block_settings(cfg)
    host, port = parse_peer(peer)
    named = _role_instruments(cfg, "alice")
    if named["alice"] is None:
        raise ConfigError(f"{cfg.source}: --role alice needs [instruments.alice]")
    rng = np.random.default_rng(seed if seed is not None else secrets.randbits(63))
    store = KeyStore(Path(out_dir) / "keys" / "alice")
    source = open_alice_host(named["alice"])
    try:
        voa = open_voa(named["voa"]) if named["voa"] is not None else None
    except BaseException:
        source.close()
        raise
    with LiveHardware(None, source, voa, mu_at_0db=cfg.engine.mu_at_0db) as hw:
        if voa is not None:
            hw.apply(intensity_params(cfg.protocol.intensities, cfg.engine.mu_at_0db))
        try:
            server = listen(host, port)
        except OSError as exc:
            raise InstrumentError(f"alice: cannot listen on {peer}: {exc}") from None
        try:
            ch = accept(server, KeyPool(auth_key), timeout_s=CONNECT_TIMEOUT_S)
        except ProtocolError as exc:
            raise _channel_failure("alice", exc) from None
        finally:
            server.close()
        try:
            return AliceRole(source, settings, store, rng).serve(ch)
        except ProtocolError as exc:
            ch.abort(str(exc))
            raise _channel_failure("alice", exc) from None
        finally:
            ch.close()


def run_bob(cfg: LabConfig, config_text: str, out_dir: Path, peer: str, auth_key: bytes, *,
            blocks: int | None, seconds: float | None, seed: int | None,
            on_block: Callable[[BlockReport], None] | None = None) -> RunSummary:
    """Bob's process: open his instruments, connect to Alice at `peer`, run the block loop."""
    from qkdctl.runner import block_settings, engine_options, make_detectors, make_tuners, stop_on_signals

    settings = block_settings(cfg)
    host, port = parse_peer(peer)
    if cfg.tuner.intensities is not None:
        raise ConfigError(f"{cfg.source}: tuner.intensities = {cfg.tuner.intensities!r}: in two-process mode "
                          "the intensities are Alice's and fixed")
    with open_bob_bench(cfg) as hw:
        try:
            ch = _connect_retrying(host, port, auth_key)
        except ProtocolError as exc:
            raise _channel_failure("bob", exc) from None
        processor = BobProcessor(ch)
        try:
            processor.hello(settings)
            engine = Engine(hw, settings, out_dir, options=engine_options(cfg),
                            tuners=make_tuners(cfg, hw.calibration), detectors=make_detectors(cfg),
                            seed=seed, config_text=config_text, auth_key=auth_key, on_block=on_block,
                            processor=processor)
            with stop_on_signals(engine):
                summary = engine.run(blocks=blocks, seconds=seconds)
            ch.send(Message("run/end", {}))
            return summary
        except ProtocolError as exc:
            ch.abort(str(exc))
            raise _channel_failure("bob", exc) from None
        finally:
            ch.close()


def run_role(role: str | None, peer: str | None, auth_key_file: str | None, cfg: LabConfig, config_text: str,
             out_dir: Path, *, blocks: int | None, seconds: float | None, seed: int | None,
             on_block: Callable[[BlockReport], None] | None = None) -> RunSummary:
    """`qkdctl run --role alice|bob --peer HOST:PORT --auth-key-file FILE`: one side of the run."""
    if role not in ("alice", "bob"):
        raise QkdInputError(f"--role must be 'alice' or 'bob' (with --peer and --auth-key-file), got {role!r}")
    if peer is None or auth_key_file is None:
        raise QkdInputError(f"--role {role} needs --peer HOST:PORT and --auth-key-file FILE")
    parse_peer(peer)
    key = read_auth_key(auth_key_file)
    if role == "alice":
        return run_alice(cfg, out_dir, peer, key, seed)
    return run_bob(cfg, config_text, out_dir, peer, key, blocks=blocks, seconds=seconds, seed=seed,
                   on_block=on_block)
