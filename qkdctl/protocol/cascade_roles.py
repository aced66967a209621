"""Cascade as two roles over a Channel: Bob drives, Alice answers parity questions.

Messages (all fields checked on receipt; anything else raises ProtocolError):
  Bob -> Alice  "cascade/start"  n, seed (shuffle seed of the frame), slots (pass slots)
  Bob -> Alice  "cascade/pass"   index (pass counter), slot, halves (0: Fisher-Yates shuffle
                                 into blocks of k; 1: random halving, `half_split`), k (block
                                 size; for halves the size of the first half, checked by
                                 Alice), blocks (how many leading blocks Alice discloses)
  Bob -> Alice  "cascade/ask"    ranges i4[3m]: (slot, start, end) triples, the parity of each
                                 range of the shuffled key of that slot (the left halves of
                                 all binary searches in lockstep: one message per level)
  Alice -> Bob  "cascade/parities" count, bits (u1, np.packbits order): one parity per block /
                                 range (computed packed by Alice, read packed by Bob)
  Bob -> Alice  "cascade/done"
Both derive the shuffle of pass `index` from (seed, index); pass slots are reused only by
BICONF rounds.  Passes of n/2 blocks and BICONF rounds use random halving: a random subset
(one splitmix64 bit per key bit, the larger side first) instead of a full shuffle; as
Cascade needs only the split into blocks to be random, this is the same protocol at a
fraction of the cost (the halves hold n/2 +- O(sqrt n) bits instead of exactly n/2).  Leakage = every parity Alice sends.  Alice refuses (ProtocolError) to
disclose more than n parities in a frame; Bob gives up (success=False after confirmation)
before asking that many.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.core.reconcile.cascade import (
    CascadeBobState, block_parities, check_bits, half_split, pack_permuted,
    packed_range_parities, pass_seed, permutation, words_for,
)
from qkdctl.core.reconcile.cascade_variants import VARIANTS, CascadeVariant
from qkdctl.protocol.cascade_session import MAX_BICONF_ROUNDS, compiled_role
from qkdctl.protocol.channel import Channel
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import MethodOutcome, ReconcileMethod


def _read_packed_parities(channel: Channel, expected: int) -> np.ndarray:
    """Alice's reply to a request of `expected` parities, still packed."""
    msg = channel.recv().expect("cascade/parities")
    count = msg.int("count")
    if count != expected:
        raise ProtocolError(f"{count} parities received, {expected} asked")
    return msg.array("bits", np.uint8, length=(expected + 7) // 8)


class CascadeAliceResponder:
    """Alice's side of Cascade as a message handler: one reply per question."""

    def __init__(self, alice_bits: np.ndarray) -> None:
        self.bits = check_bits(alice_bits)
        self.n = self.bits.size
        self.finished = False
        self._words: np.ndarray | None = None
        self._begun = np.zeros(0, dtype=bool)
        self._seed = 0
        self._index = 0
        self._disclosed = 0

    def handle(self, msg: Message) -> list[Message]:
        """Answer one message from Bob (ProtocolError on anything out of protocol)."""
        n = self.n
        if self._words is None:
            msg.expect("cascade/start")
            if msg.int("n") != n:
                raise ProtocolError(f"peer's frame has {msg.int('n')} bits, ours {n}")
            self._seed = msg.int("seed", 0)
            slots = msg.int("slots", 1, 255)
            self._words = np.zeros((slots, words_for(n)), dtype=np.uint64)
            self._begun = np.zeros(slots, dtype=bool)
            return []
        msg.expect("cascade/pass", "cascade/ask", "cascade/done")
        if msg.kind == "cascade/done":
            self.finished = True
            return []
        words = self._words
        slots = words.shape[0]
        if msg.kind == "cascade/pass":
            msg.int("index", self._index, self._index)
            slot = msg.int("slot", 0, slots - 1)
            k = msg.int("k", 1, n)
            blocks = msg.int("blocks", 1, -(-n // k))
            seed = pass_seed(self._seed, self._index)
            if msg.int("halves", 0, 1):
                perm, k_split = half_split(seed, n)
                if k != k_split:
                    raise ProtocolError(f"peer's half split has {k} bits, ours {k_split}")
            else:
                perm = permutation(seed, n)
            pack_permuted(self.bits, perm, out=words[slot])
            self._begun[slot] = True
            self._index += 1
            count = blocks
            if self._disclosed + count > n:
                raise ProtocolError(f"peer asked for more than n = {n} parities in one frame")
            packed = np.packbits(block_parities(words[slot], n, k, blocks))
        else:
            ranges = msg.array("ranges", np.int32)
            count = ranges.size // 3
            if self._disclosed + count > n:
                raise ProtocolError(f"peer asked for more than n = {n} parities in one frame")
            try:
                packed = packed_range_parities(words, n, self._begun, ranges)
            except QkdInputError as exc:
                raise ProtocolError(f"bad parity request: {exc}") from None
        self._disclosed += count
        return [Message("cascade/parities", {"count": count, "bits": packed})]


def alice_responder(alice_bits: np.ndarray, qber_estimate: float,
                    rng: np.random.Generator) -> CascadeAliceResponder:
    """Alice's Cascade responder (qber/rng unused: Bob drives the protocol)."""
    return CascadeAliceResponder(alice_bits)


def alice_role(alice_bits: np.ndarray, qber_estimate: float, channel: Channel,
               rng: np.random.Generator) -> None:
    """Answer Bob's Cascade parity questions over `channel` until "cascade/done"."""
    responder = CascadeAliceResponder(alice_bits)
    while not responder.finished:
        for reply in responder.handle(channel.recv()):
            channel.send(reply)


def bob_role(variant: CascadeVariant, bob_bits: np.ndarray, qber_estimate: float,
             channel: Channel, rng: np.random.Generator) -> MethodOutcome:
    """Drive Cascade `variant` from Bob's side; return his corrected key and the accounting."""
    bits = check_bits(bob_bits)
    n = bits.size
    sizes = variant.block_sizes(qber_estimate, n)
    biconf_slot = len(sizes)
    slot_sizes = sizes + ([max(1, n // 2)] if variant.biconf_streak else [])
    halves = [(i >= 2 and variant.later == "half") or i == biconf_slot
              for i in range(len(slot_sizes))]
    state = CascadeBobState(bits, slot_sizes, variant.block_reuse, halves)
    seed = int(rng.integers(0, 2**63))
    channel.send(Message("cascade/start", {"n": n, "seed": seed, "slots": len(slot_sizes)}))
    acct = {"leaked": 0, "index": 0, "parity_rounds": 0, "total_parity": -1}

    def run_pass(slot: int, first_block_only: bool) -> int | None:
        """One pass (or BICONF round); None when the leak budget would be exceeded."""
        k = state.begin_pass(slot, pass_seed(seed, acct["index"]), halves[slot])
        blocks = 1 if first_block_only else -(-n // k)
        infer = variant.infer_last_block and acct["total_parity"] >= 0 and blocks > 1
        asked = blocks - 1 if infer else blocks
        if acct["leaked"] + asked > n:
            return None
        channel.send(Message("cascade/pass", {"index": acct["index"], "slot": slot,
                                              "halves": int(halves[slot]), "k": k,
                                              "blocks": asked}))
        acct["index"] += 1
        par = np.unpackbits(_read_packed_parities(channel, asked), count=asked)
        acct["leaked"] += asked
        if infer:
            par = np.append(par, np.uint8((acct["total_parity"] + int(par.sum())) & 1))
        elif acct["total_parity"] < 0 and not first_block_only:
            acct["total_parity"] = int(par.sum()) & 1
        acct["parity_rounds"] += 1
        divisor = variant.wave_divisor if slot > 0 else 1
        odd = state.start_pass(slot, par, -1 if divisor == 1 else 0)
        while not state.overflowed:
            if not state.active_searches:
                waiting = state.waiting_blocks(slot) if divisor > 1 else 0
                if waiting == 0:
                    break
                state.resume_pass(slot, -(-waiting // divisor))
                continue
            ranges = state.requests()
            asked = ranges.size // 3
            if acct["leaked"] + asked > n:
                return None
            channel.send(Message("cascade/ask", {"ranges": ranges}))
            packed = _read_packed_parities(channel, asked)
            acct["leaked"] += asked
            acct["parity_rounds"] += 1
            state.apply_replies(packed)
        return None if state.overflowed else odd

    completed = True
    for slot in range(len(sizes)):
        if run_pass(slot, False) is None:
            completed = False
            break
    biconf_rounds = 0
    streak = 0
    while completed and streak < variant.biconf_streak:
        odd = run_pass(biconf_slot, True)
        biconf_rounds += 1
        if odd is None or biconf_rounds > MAX_BICONF_ROUNDS:
            completed = False
            break
        streak = streak + 1 if odd == 0 else 0
    channel.send(Message("cascade/done", {}))
    return MethodOutcome(
        bob_bits=state.corrected_bits(),
        leaked_bits=acct["leaked"],
        extra={"variant": variant.name, "completed": completed, "passes": acct["index"],
               "biconf_rounds": biconf_rounds, "parity_rounds": acct["parity_rounds"],
               "bits_flipped": state.flips, "block_sizes": sizes},
    )


def cascade_method(variant: CascadeVariant) -> ReconcileMethod:
    """The ReconcileMethod running Cascade `variant` (named "cascade-<variant>")."""
    return ReconcileMethod(f"cascade-{variant.name}", alice_role, partial(bob_role, variant),
                           responder=alice_responder, compiled=partial(compiled_role, variant))


METHODS: dict[str, ReconcileMethod] = {
    f"cascade-{name}": cascade_method(v) for name, v in VARIANTS.items()
}
