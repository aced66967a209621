"""LDPC (blind, rate-adaptive) reconciliation as two roles over a Channel: Bob drives.

Messages (all fields checked on receipt; anything else raises ProtocolError):
  Bob -> Alice  "ldpc/start"    n (key bits), frame_n, rate_pct, seed (code), k (key bits of
                                a full frame), punct (punctured bits per frame), frames,
                                check_bits (per-frame tag length; must equal Alice's variant)
  Alice -> Bob  "ldpc/syndrome" bits (packed u1): the frames' syndromes, m bits each; with
                                check_bits > 0 also salt (16 bytes) and tags (packed u1):
                                check_bits per frame, the salted tag of her frame's key bits
  Bob -> Alice  "ldpc/reveal"   frame i4[], pos i4[] (codeword columns): one blind round
  Alice -> Bob  "ldpc/values"   count, bits (packed u1): her bits at those columns
  Bob -> Alice  "ldpc/done"
Both build the frame layout from (code, k, punct) with `qkdctl.core.reconcile.ldpc`; Bob
picks them with `choose_layout` (equal frames, the last one shorter by at most frames - 1).  Alice refuses (ProtocolError) a reveal of a
shortened or already revealed column, or beyond `max_reveal_fraction` of a frame's key
bits plus its punctured bits.

Leakage (MethodOutcome.leaked_bits) = syndrome bits + revealed bits + check bits -
punctured bits (see `qkdctl.core.reconcile.ldpc`); the four terms are in `extra`.

Per-frame check (check_bits > 0): a frame counts as decoded only when BP converged, agrees
with the revealed bits and the tag of its key bits equals Alice's; a frame whose BP
converged to another word of the syndrome (Alice's plus a light codeword) stays in the
blind loop (more reveals, resumed BP) instead of failing the key's confirmation.  Alice
sends all tags with the syndromes (no extra round trip, check_bits per frame leaked once);
Bob sending his tags for Alice to compare would leak check_bits per attempt instead (a
wrong word's tag is another function of Alice's bits) plus the answers, and cost a round
trip per check.  Tag: BLAKE2b keyed by Alice's random salt, personalised by the frame
index, truncated to check_bits; a wrong word passes with probability ~2^-check_bits and
is then still caught by the final confirmation.

Codes are built once per (rate, n, seed) by PEG, or per (rate, n, seed, base columns) as
quasi-cyclic codes (`qkdctl.core.reconcile.qc_codes`, when the variant's `qc_base_columns`
is set: both parties' variants must agree, as for every other knob), and cached: in this
process, and on disk in $QKDCTL_CACHE_DIR or $XDG_CACHE_HOME/qkdctl/ldpc_codes (~/.cache by
default).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.core.reconcile.codes import FAMILY_RATES, LdpcCode, build_code, ensemble_tag
from qkdctl.core.reconcile.ldpc import (
    FrameLayout, SyndromeDecoder, binary_entropy, candidate_rates, choose_layout, error_priors,
    frame_bits, frame_layout, frame_split, reveal_positions, syndrome,
)
from qkdctl.core.reconcile.qc_codes import QcLdpcCode, build_qc_code, lifted_matrix, qc_syndrome
from qkdctl.core.reconcile.qc_decoder import QcSyndromeDecoder
from qkdctl.protocol.channel import Channel
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import MethodOutcome, ReconcileMethod

CODE_SEED = 20261126
_CACHE_VERSION = 3
_QC_CACHE_VERSION = 2  # 2: shifts also avoid light degree-2 codewords


@dataclass(frozen=True)
class LdpcVariant:
    """One LDPC reconciliation setting (named knobs; the roles read only these fields).

    frame_sizes: code lengths on offer (Bob takes the largest whose frames are at least
    min_fill key bits, else the smallest; see `frame_length`); rates: the code family; f_start: efficiency of the
    first decoding; f_start_by_frame: (frame length, f_start) pairs that override f_start
    for those code lengths (a longer code decodes nearer capacity, so it can start higher);
    key_share: the largest share of a frame's columns that carry key bits
    (`choose_layout`); key_share_by_frame: (frame length, key_share) pairs that override
    it for those code lengths; min_fill: a frame length is passed over when its frames would carry
    a smaller share of key bits (a little-filled long frame decodes worse than a well-filled
    shorter one; 0.4: a frame is at most 60 % shortened); f_step: efficiency added per blind round; max_rounds: blind rounds after the
    first decoding (0 = plain rate-adaptive, Elkouss et al. 2010); punct_fraction: punctured
    share of a frame; backend / max_iter / stall_iter / bp_method / osd_order: decoder (see
    `qkdctl.core.reconcile.ldpc.SyndromeDecoder`); resume: a blind round continues BP from
    the failed round's messages (layered backend) instead of starting afresh;
    qc_base_columns: 0 for the PEG family, else quasi-cyclic codes of that many base columns
    (circulants of frame_n / qc_base_columns), decoded by `QcSyndromeDecoder` with `qc_phi`;
    check_bits: per-frame tag length (0..64; 0 = no per-frame check).
    """

    name: str
    frame_sizes: tuple[int, ...] = (16384, 65536)
    rates: tuple[float, ...] = FAMILY_RATES
    f_start: float = 1.08
    f_start_by_frame: tuple[tuple[int, float], ...] = ()
    f_step: float = 0.01
    key_share: float = 1.0
    key_share_by_frame: tuple[tuple[int, float], ...] = ()
    min_fill: float = 0.4
    max_rounds: int = 40  # at QBER 1 % the codes need f ~1.22-1.25: 12 rounds of +0.01 from 1.08 fell short
    punct_fraction: float = 0.0
    backend: str = "layered"
    max_iter: int = 60
    stall_iter: int = 8
    bp_method: str = "product_sum"
    osd_order: int | None = None
    resume: bool = True
    max_reveal_fraction: float = 0.5
    qc_base_columns: int = 0
    qc_phi: str = "tanh"
    check_bits: int = 0

    def start_f(self, frame_n: int) -> float:
        """Efficiency of the first decoding on frames of `frame_n` columns."""
        return dict(self.f_start_by_frame).get(frame_n, self.f_start)

    def share(self, frame_n: int) -> float:
        """Largest share of key bits in a frame of `frame_n` columns."""
        return dict(self.key_share_by_frame).get(frame_n, self.key_share)


def _cache_dir() -> Path:
    env = os.environ.get("QKDCTL_CACHE_DIR")
    if env:
        return Path(env) / "ldpc_codes"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qkdctl" / "ldpc_codes"


@lru_cache(maxsize=64)
def family_code(rate: float, n: int, seed: int = CODE_SEED, qc_base_columns: int = 0) -> LdpcCode:
    """The family code (rate, n, seed): from this process, the disk cache, or built by PEG.

    With `qc_base_columns` > 0: the quasi-cyclic code of that many base columns (circulant
    size n / qc_base_columns), a `QcLdpcCode`; its cache entry holds the shift matrix.
    """
    qc = f"_qc{qc_base_columns}v{_QC_CACHE_VERSION}" if qc_base_columns else ""
    # keyed by the degree-distribution row too: a changed table never loads an old matrix
    path = (_cache_dir() / f"v{_CACHE_VERSION}_r{int(round(rate * 100))}_n{n}_s{seed}{qc}"
            f"_e{ensemble_tag(rate)}.npz")
    if path.exists():
        try:
            with np.load(path) as z:
                if qc_base_columns:
                    return _qc_code_from(z, rate, n // qc_base_columns, seed)
                h = sp.csr_matrix((np.ones(z["indices"].size, np.uint8), z["indices"], z["indptr"]),
                                  shape=tuple(z["shape"]))
                return LdpcCode(h=h, h_csc=h.tocsc(), puncture_order=z["puncture_order"],
                                fill_order=z["fill_order"], rate=round(rate, 2), seed=seed)
        except (OSError, KeyError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    if qc_base_columns:
        if qc_base_columns <= 0 or n % qc_base_columns:
            raise QkdInputError(f"frame length {n} is not a multiple of {qc_base_columns} base columns")
        code = build_qc_code(rate, n, seed, n // qc_base_columns)
        arrays = {"shifts": code.shifts, "four_cycles": np.array(code.four_cycles)}
    else:
        code = build_code(rate, n, seed)
        arrays = {"indices": code.h.indices.astype(np.int32), "indptr": code.h.indptr.astype(np.int64),
                  "shape": np.array(code.h.shape)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, puncture_order=code.puncture_order, fill_order=code.fill_order, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # no writable cache: the code is rebuilt next process
    return code


def _qc_code_from(z: np.lib.npyio.NpzFile, rate: float, circulant: int, seed: int) -> QcLdpcCode:
    h = lifted_matrix(z["shifts"], circulant)
    return QcLdpcCode(h=h, h_csc=h.tocsc(), puncture_order=z["puncture_order"],
                      fill_order=z["fill_order"], rate=round(rate, 2), seed=seed, z=circulant,
                      shifts=z["shifts"], four_cycles=int(z["four_cycles"]))


@lru_cache(maxsize=16)
def _decoder(rate: float, n: int, seed: int, k: int, punct: int, backend: str, max_iter: int,
             stall_iter: int, bp_method: str, osd_order: int | None, qc_base_columns: int = 0,
             qc_phi: str = "tanh") -> SyndromeDecoder | QcSyndromeDecoder:
    """Decoder of the frames laid out as (k, punct) on the code; the layered ones leave the
    full frame's shortened columns (QC: blocks) out of the graph (a shorter last frame only
    adds to them)."""
    code = family_code(rate, n, seed, qc_base_columns)
    columns = None
    if backend == "layered":
        lay = _family_layout(rate, n, seed, qc_base_columns, k, punct)
        columns = np.sort(np.concatenate([lay.key_pos, lay.punct_pos]))
    if qc_base_columns:
        if backend != "layered" or bp_method != "product_sum":
            raise QkdInputError("quasi-cyclic codes decode with the layered product_sum decoder only")
        return QcSyndromeDecoder(code, max_iter=max_iter, stall_iter=stall_iter, columns=columns,
                                 phi=qc_phi)
    return SyndromeDecoder(code, max_iter=max_iter, backend=backend, bp_method=bp_method,
                           osd_order=osd_order, stall_iter=stall_iter, columns=columns)


def frame_length(variant: LdpcVariant, n_key: int) -> int:
    """Code length for a key of `n_key` bits: the largest of `frame_sizes` whose frames, cut
    by `frame_split` (at most `share(frame)` of a frame), carry at least `min_fill` of their
    columns as key bits (a frame may be longer than the key: the rest is shortened); else
    the smallest."""
    fitting = [f for f in variant.frame_sizes
               if frame_split(n_key, f, variant.share(f))[1] / f >= variant.min_fill]
    return max(fitting) if fitting else min(variant.frame_sizes)


@lru_cache(maxsize=16)
def _family_layout(rate: float, frame_n: int, seed: int, qc_base_columns: int, k: int,
                   punct: int) -> FrameLayout:
    """`frame_layout` of (k, punct) on the family code, cached (both roles, the decoder and
    consecutive keys of one length share it; its arrays are read-only)."""
    lay = frame_layout(family_code(rate, frame_n, seed, qc_base_columns), k, punct)
    for arr in (lay.key_pos, lay.punct_pos, lay.short_pos):
        arr.flags.writeable = False
    return lay


def _layouts(rate: float, frame_n: int, seed: int, qc_base_columns: int, n_key: int, k: int,
             punct: int) -> tuple[FrameLayout, ...]:
    """The frames' layouts of an `n_key`-bit key: full frames of k key bits, the last one
    holding the rest."""
    frames = -(-n_key // k)
    full = _family_layout(rate, frame_n, seed, qc_base_columns, k, punct)
    last = _family_layout(rate, frame_n, seed, qc_base_columns, n_key - (frames - 1) * k, punct)
    return (full,) * (frames - 1) + (last,)


def _syndrome(code: LdpcCode, bits: np.ndarray) -> np.ndarray:
    """H x of a frame: by circulant blocks on a QC code (same bits, ~15x faster)."""
    return qc_syndrome(code, bits) if isinstance(code, QcLdpcCode) else syndrome(code, bits)


def _packed(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits)


def _unpacked(msg: Message, name: str, count: int) -> np.ndarray:
    return np.unpackbits(msg.array(name, np.uint8, length=(count + 7) // 8), count=count)


SALT_BYTES = 16


def frame_tag(key_bits: np.ndarray, salt: bytes, frame: int, check_bits: int) -> np.ndarray:
    """The first `check_bits` bits (u1, 0..64) of BLAKE2b over a frame's key bits, keyed by
    `salt` and personalised by the frame index."""
    digest = hashlib.blake2b(np.packbits(key_bits).tobytes() + key_bits.size.to_bytes(8, "little"),
                             key=salt, person=frame.to_bytes(16, "little"), digest_size=8).digest()
    return np.unpackbits(np.frombuffer(digest, np.uint8), count=check_bits)


class LdpcAliceResponder:
    """Alice's side: syndromes on "ldpc/start", her bits on each checked "ldpc/reveal"."""

    def __init__(self, variant: LdpcVariant, alice_bits: np.ndarray, rng: np.random.Generator) -> None:
        self.variant = variant
        self.bits = np.ascontiguousarray(alice_bits, dtype=np.uint8)
        self.rng = rng
        self.finished = False
        self._frames: list[np.ndarray] = []
        self._layouts: tuple[FrameLayout, ...] = ()
        self._revealed: list[np.ndarray] = []
        self._budget: list[int] = []

    def handle(self, msg: Message) -> list[Message]:
        """Answer one message from Bob (ProtocolError on anything out of protocol)."""
        v = self.variant
        if not self._layouts:
            msg.expect("ldpc/start")
            if msg.int("n") != self.bits.size:
                raise ProtocolError(f"peer's key has {msg.int('n')} bits, ours {self.bits.size}")
            frame_n = msg.int("frame_n")
            if frame_n not in v.frame_sizes:
                raise ProtocolError(f"peer's frame length {frame_n} not in {v.frame_sizes}")
            rate = msg.int("rate_pct") / 100
            if round(rate, 2) not in v.rates:
                raise ProtocolError(f"peer asked for rate {rate}, not in the family {v.rates}")
            seed = msg.int("seed", 0)
            code = family_code(round(rate, 2), frame_n, seed, v.qc_base_columns)
            k = msg.int("k", 1, code.n)
            punct = msg.int("punct", 0, int(code.puncture_order.size))
            if k + punct > code.n:
                raise ProtocolError(f"k={k} plus punct={punct} exceed the code length {code.n}")
            if msg.int("frames") != -(-self.bits.size // k):
                raise ProtocolError("frame count does not match key length and k")
            if msg.int("check_bits") != v.check_bits:
                raise ProtocolError(f"peer's check_bits {msg.int('check_bits')}, ours {v.check_bits}")
            self._layouts = _layouts(round(rate, 2), frame_n, seed, v.qc_base_columns,
                                     self.bits.size, k, punct)
            synd = []
            for i, lay in enumerate(self._layouts):
                pad = self.rng.integers(0, 2, size=lay.punct_pos.size, dtype=np.uint8)
                x = frame_bits(lay, self.bits[i * k:i * k + lay.k], pad)
                self._frames.append(x)
                self._revealed.append(np.zeros(code.n, dtype=bool))
                self._budget.append(lay.punct_pos.size + int(v.max_reveal_fraction * lay.k))
                synd.append(_syndrome(code, x))
            fields = {"bits": _packed(np.concatenate(synd))}
            if v.check_bits:
                salt = self.rng.bytes(SALT_BYTES)
                tags = [frame_tag(self.bits[i * k:i * k + lay.k], salt, i, v.check_bits)
                        for i, lay in enumerate(self._layouts)]
                fields.update(salt=salt, tags=_packed(np.concatenate(tags)))
            return [Message("ldpc/syndrome", fields)]
        msg.expect("ldpc/reveal", "ldpc/done")
        if msg.kind == "ldpc/done":
            self.finished = True
            return []
        frame = msg.array("frame", np.int32)
        pos = msg.array("pos", np.int32)
        if frame.size != pos.size or frame.size == 0:
            raise ProtocolError("reveal needs equally long, non-empty frame and pos arrays")
        if frame.min() < 0 or frame.max() >= len(self._layouts):
            raise ProtocolError("reveal names a frame that does not exist")
        n = self._layouts[0].code.n
        if pos.min() < 0 or pos.max() >= n:
            raise ProtocolError(f"reveal position outside 0..{n - 1}")
        values = np.empty(pos.size, dtype=np.uint8)
        for f in np.unique(frame):
            sel = frame == f
            p = pos[sel].astype(np.int64)
            lay, known = self._layouts[f], self._revealed[f]
            shortened = np.zeros(n, dtype=bool)
            shortened[lay.short_pos] = True
            if np.unique(p).size != p.size or known[p].any() or shortened[p].any():
                raise ProtocolError(f"frame {f}: reveal of a repeated, revealed or shortened column")
            if int(known.sum()) + p.size > self._budget[f]:
                raise ProtocolError(f"frame {f}: reveal beyond the disclosure limit")
            known[p] = True
            values[sel] = self._frames[f][p]
        return [Message("ldpc/values", {"count": int(pos.size), "bits": _packed(values)})]


def alice_responder(variant: LdpcVariant, alice_bits: np.ndarray, qber_estimate: float,
                    rng: np.random.Generator) -> LdpcAliceResponder:
    """Alice's LDPC responder (Bob chooses code and layout from the QBER estimate)."""
    return LdpcAliceResponder(variant, alice_bits, rng)


def alice_role(variant: LdpcVariant, alice_bits: np.ndarray, qber_estimate: float,
               channel: Channel, rng: np.random.Generator) -> None:
    """Alice's LDPC role over `channel`: answer until Bob says done."""
    responder = LdpcAliceResponder(variant, alice_bits, rng)
    while not responder.finished:
        for reply in responder.handle(channel.recv()):
            channel.send(reply)


def bob_role(variant: LdpcVariant, bob_bits: np.ndarray, qber_estimate: float,
             channel: Channel, rng: np.random.Generator) -> MethodOutcome:
    """Bob's LDPC role: choose code, get syndromes, decode, ask for blind reveals on failure."""
    v = variant
    bits = np.ascontiguousarray(bob_bits, dtype=np.uint8)
    if not 0.0 < qber_estimate < 0.5:
        raise QkdInputError(f"qber_estimate must lie in (0, 0.5), got {qber_estimate}")
    if not 0 <= v.check_bits <= 64:
        raise QkdInputError(f"check_bits must lie in 0..64, got {v.check_bits}")
    frame_n = frame_length(v, bits.size)
    codes = {r: family_code(r, frame_n, CODE_SEED, v.qc_base_columns)
             for r in candidate_rates(v.rates, frame_n, bits.size, qber_estimate, v.start_f(frame_n),
                                      v.share(frame_n))}
    first = choose_layout(codes, bits.size, qber_estimate, v.start_f(frame_n), v.punct_fraction,
                          v.share(frame_n))
    code, k, punct = first.code, first.k, int(first.punct_pos.size)
    layouts = _layouts(code.rate, frame_n, code.seed, v.qc_base_columns, bits.size, k, punct)
    channel.send(Message("ldpc/start", {
        "n": int(bits.size), "frame_n": frame_n, "rate_pct": int(round(code.rate * 100)),
        "seed": code.seed, "k": k, "punct": punct, "frames": len(layouts),
        "check_bits": v.check_bits}))
    m = code.m
    synd_msg = channel.recv().expect("ldpc/syndrome")
    s_all = _unpacked(synd_msg, "bits", m * len(layouts))
    if v.check_bits:
        salt = synd_msg.bytes("salt")
        if len(salt) != SALT_BYTES:
            raise ProtocolError(f"check salt has {len(salt)} bytes, expected {SALT_BYTES}")
        tags = _unpacked(synd_msg, "tags", v.check_bits * len(layouts)).reshape(len(layouts), -1)
    dec = _decoder(code.rate, frame_n, code.seed, k, punct, v.backend, v.max_iter, v.stall_iter,
                   v.bp_method, v.osd_order, v.qc_base_columns, v.qc_phi)
    h_q = binary_entropy(qber_estimate)
    ys, targets, known, known_err, done, results = [], [], [], [], [], []
    for i, lay in enumerate(layouts):
        ys.append(frame_bits(lay, bits[i * k:i * k + lay.k], np.zeros(punct, np.uint8)))
        targets.append(_syndrome(code, ys[i]) ^ s_all[i * m:(i + 1) * m])
        known.append(np.zeros(code.n, dtype=bool))
        known_err.append(np.zeros(code.n, dtype=np.uint8))
        done.append(False)
        results.append(None)
    revealed_bits = 0
    rounds = 0
    iterations = 0
    check_failures = 0
    t0 = time.perf_counter()
    while True:
        todo = [i for i in range(len(layouts)) if not done[i]]
        known_at = [np.flatnonzero(known[i]) for i in todo]
        priors = [error_priors(layouts[i], qber_estimate, pos, known_err[i][pos])
                  for i, pos in zip(todo, known_at)]
        states = [results[i].state if (results[i] is not None and v.resume) else None for i in todo]
        if v.backend == "layered":
            decoded = dec.decode_many([targets[i] for i in todo], priors, states)
        else:
            decoded = [dec.decode(targets[i], p, s) for i, p, s in zip(todo, priors, states)]
        for i, pos, res in zip(todo, known_at, decoded):
            iterations += res.iterations
            results[i] = res
            done[i] = res.converged and np.array_equal(res.error[pos], known_err[i][pos])
            if done[i] and v.check_bits:
                lay = layouts[i]
                word = (ys[i] ^ res.error)[lay.key_pos]
                done[i] = np.array_equal(frame_tag(word, salt, i, v.check_bits), tags[i])
                check_failures += int(not done[i])
        pending = [i for i in range(len(layouts)) if not done[i]]
        if not pending or rounds >= v.max_rounds:
            break
        frames_req, pos_req = [], []
        for i in pending:
            lay = layouts[i]
            step = max(1, int(np.ceil(v.f_step * lay.k * h_q)))
            budget = punct + int(v.max_reveal_fraction * lay.k) - int(known[i].sum())
            if budget <= 0:
                continue
            pos = reveal_positions(lay, known[i], results[i].llr, min(step, budget))
            frames_req.append(np.full(pos.size, i, np.int32))
            pos_req.append(pos.astype(np.int32))
        if not pos_req:
            break
        frame_arr, pos_arr = np.concatenate(frames_req), np.concatenate(pos_req)
        channel.send(Message("ldpc/reveal", {"frame": frame_arr, "pos": pos_arr}))
        reply = channel.recv().expect("ldpc/values")
        if reply.int("count") != pos_arr.size:
            raise ProtocolError(f"{reply.int('count')} values received, {pos_arr.size} asked")
        values = _unpacked(reply, "bits", pos_arr.size)
        for i in np.unique(frame_arr):
            sel = frame_arr == i
            p = pos_arr[sel].astype(np.int64)
            known[i][p] = True
            known_err[i][p] = values[sel] ^ ys[i][p]  # Bob keeps y; e = x_A + y is now known
        revealed_bits += int(pos_arr.size)
        rounds += 1
    decode_s = time.perf_counter() - t0
    channel.send(Message("ldpc/done", {}))
    out = bits.copy()
    for i, lay in enumerate(layouts):
        corrected = ys[i] ^ (results[i].error if done[i] else known_err[i])
        out[i * k:i * k + lay.k] = corrected[lay.key_pos]
    syndrome_bits = m * len(layouts)
    punctured_bits = punct * len(layouts)
    check_bits = v.check_bits * len(layouts)
    return MethodOutcome(
        bob_bits=out,
        leaked_bits=syndrome_bits + revealed_bits + check_bits - punctured_bits,
        extra={"frames": len(layouts), "frame_n": frame_n, "rate": code.rate,
               "key_bits_per_frame": k, "syndrome_bits": syndrome_bits,
               "revealed_bits": revealed_bits, "punctured_bits": punctured_bits,
               "check_bits": check_bits, "check_failures": check_failures,
               "shortened_bits": int(sum(lay.short_pos.size for lay in layouts)),
               "blind_rounds": rounds, "failed_frames": len(layouts) - int(sum(done)),
               "bp_iterations": iterations, "decode_seconds": decode_s},
    )


def ldpc_method(variant: LdpcVariant) -> ReconcileMethod:
    """The ReconcileMethod of an LDPC variant."""
    return ReconcileMethod(variant.name, partial(alice_role, variant), partial(bob_role, variant),
                           responder=partial(alice_responder, variant))


VARIANTS: dict[str, LdpcVariant] = {
    # blind rate-adaptive (Martinez-Mateo 2012 / Kiktenko 2017 reveal choice) on quasi-cyclic
    # codes (256 base columns), vectorised decoder, tanh-product check update, f_start 1.08
    # (docs/ldpc.md: f 1.094 / 1.094 / 1.082 at QBER 2 / 3 / 5 %, 2.6-3.0x the CPU
    # throughput of the PEG variant on the same keys; f_start 1.06: f 1.089 / 1.079 / 1.072
    # at 0.6-0.7x the speed); 16-bit per-frame check (docs/ldpc.md: 1e6-bit keys at 2 %:
    # 3 of 120 lost to wrong words -> 0 of 120; n = 1e5, 300 keys at 2 %: f 1.095 -> 1.097)
    # Keys that fill 131072-column frames to 60-77 % key bits decode on them, starting at
    # f 1.09 (docs/ldpc.md, "Long frames and key share": 1e6-bit keys, 300 per QBER 2 / 3 /
    # 5 %: f 1.095 / 1.093 / 1.091 at 5.5 / 6.9 / 9.6 Mbit/s, was 3.9 / 3.5 / 4.2), also
    # when the frame is longer than the key (1e5 bits: one frame); 65536-column frames take
    # up to 92 % key bits, so keys between the long frames' fits no longer fall to
    # 16384-column frames (docs/ldpc.md, "One frame per 1e5-bit key": 1.1e5 bits at 2 %,
    # f 1.125 -> 1.089).
    "ldpc-blind": LdpcVariant("ldpc-blind", frame_sizes=(16384, 65536, 131072), f_start=1.08,
                              f_start_by_frame=((131072, 1.09),), key_share=0.77,
                              key_share_by_frame=((65536, 0.92),), min_fill=0.6,
                              qc_base_columns=256, qc_phi="tanh", check_bits=16),
    # the same on the PEG codes with the generic layered decoder (the default before QC codes)
    "ldpc-blind-peg": LdpcVariant("ldpc-blind-peg"),
    # one-shot rate-adaptive (Elkouss et al. 2010): one syndrome at f = 1.2, no reveals
    "ldpc": LdpcVariant("ldpc", f_start=1.2, max_rounds=0, max_iter=60, stall_iter=8),
}

METHODS: dict[str, ReconcileMethod] = {name: ldpc_method(v) for name, v in VARIANTS.items()}
