"""Message authentication for the post-processing channel, keyed from pre-shared key.

`KeyPool` holds pre-shared authentication key material (the key store supplies it later;
tests pass the same random bytes to both parties) and accounts for every byte consumed.

`HmacAuthenticator` (the default) computes HMAC-SHA256 with a 32-byte session key taken
once from the pool when the channel is opened, truncated to `tag_bytes` (default 32).
Key consumed: 32 bytes per session, 0 bytes per message.  Security is computational (the
PRF security of HMAC-SHA256), not information-theoretic.

`Blake2bAuthenticator` (mac="blake2b") is keyed BLAKE2b (RFC 7693 keyed mode, a PRF and
so a MAC, the same computational security notion as HMAC-SHA256) with a 32-byte session
key and 32-byte tags: one hash pass per message instead of HMAC's two, and the keyed state
is built once per session and copied per message.  Key consumed: 32 bytes per session,
0 bytes per message.  `reconcile`'s in-process channels use it by default.

`WegmanCarterAuthenticator` (mac="wegman-carter") is information-theoretically secure:
tag = PolyHash_s(message) XOR pad, PolyHash_s the polynomial hash over GF(2^64)
(x^64 + x^4 + x^3 + x + 1) of the message's 64-bit words and its length, with a hash key
s of 8 bytes per session, and a fresh 8-byte one-time pad per message.  A forgery of a
message of L words succeeds with probability <= (L + 2) / 2^64.  Pads are addressed by
(direction, sequence number): each session reserves `pads_per_direction` pads per
direction up front (in a fixed order, so both parties hold the same pads); reserved
pads count as consumed.  Key consumed: 8 + 16 * pads_per_direction bytes per session,
i.e. 8 bytes per message in each direction the session may carry.

Both MACs bind a direction label (so a reflected message fails), the sequence number and
the encoded message.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
from numba import njit

from qkdctl.core.errors import ProtocolError, QkdInputError

HMAC_SESSION_KEY_BYTES = 32
BLAKE2B_SESSION_KEY_BYTES = 32
MACS = ("hmac-sha256", "blake2b", "wegman-carter")
WC_HASH_KEY_BYTES = 8
WC_PAD_BYTES = 8
_GF64_LOW = np.uint64(0x1B)  # x^64 = x^4 + x^3 + x + 1


class KeyPool:
    """Pre-shared authentication key material, handed out front to back and accounted."""

    def __init__(self, material: bytes) -> None:
        if not isinstance(material, (bytes, bytearray)):
            raise QkdInputError("key pool material must be bytes")
        self._material = bytes(material)
        self._used = 0

    def take(self, n_bytes: int) -> bytes:
        """Consume and return the next `n_bytes` bytes; ProtocolError when exhausted."""
        if n_bytes <= 0:
            raise QkdInputError(f"key request must be positive, got {n_bytes} bytes")
        if self._used + n_bytes > len(self._material):
            raise ProtocolError(
                f"authentication key pool exhausted: need {n_bytes} bytes, "
                f"{len(self._material) - self._used} left"
            )
        chunk = self._material[self._used:self._used + n_bytes]
        self._used += n_bytes
        return chunk

    @property
    def consumed_bytes(self) -> int:
        """Key bytes handed out so far."""
        return self._used

    @property
    def remaining_bytes(self) -> int:
        """Key bytes still available."""
        return len(self._material) - self._used


class HmacAuthenticator:
    """HMAC-SHA256 tags with a per-session key from a KeyPool (32 bytes/session, 0/message)."""

    def __init__(self, pool: KeyPool, tag_bytes: int = 32) -> None:
        if not 16 <= tag_bytes <= 32:
            raise QkdInputError(f"HMAC tag length must be 16..32 bytes, got {tag_bytes}")
        self.tag_bytes = tag_bytes
        self._keyed = hmac.new(pool.take(HMAC_SESSION_KEY_BYTES), digestmod=hashlib.sha256)
        self.key_bytes_consumed = HMAC_SESSION_KEY_BYTES

    def tag(self, direction: bytes, seq: int, body: bytes) -> bytes:
        """Tag of one message sent in `direction` with sequence number `seq`."""
        mac = self._keyed.copy()
        mac.update(direction + seq.to_bytes(8, "little"))
        mac.update(body)
        return mac.digest()[: self.tag_bytes]

    def check(self, direction: bytes, seq: int, body: bytes, tag: bytes) -> None:
        """Raise ProtocolError unless `tag` authenticates (direction, seq, body)."""
        if not hmac.compare_digest(self.tag(direction, seq, body), tag):
            raise ProtocolError(f"bad MAC on message {seq} ({direction.decode()})")


class Blake2bAuthenticator:
    """Keyed BLAKE2b tags with a per-session key from a KeyPool (32 bytes/session, 0/message)."""

    def __init__(self, pool: KeyPool, tag_bytes: int = 32) -> None:
        if not 16 <= tag_bytes <= 64:
            raise QkdInputError(f"BLAKE2b tag length must be 16..64 bytes, got {tag_bytes}")
        self.tag_bytes = tag_bytes
        self._keyed = hashlib.blake2b(key=pool.take(BLAKE2B_SESSION_KEY_BYTES),
                                      digest_size=tag_bytes)
        self.key_bytes_consumed = BLAKE2B_SESSION_KEY_BYTES

    def tag(self, direction: bytes, seq: int, body: bytes) -> bytes:
        """Tag of one message sent in `direction` (4 bytes) with sequence number `seq`."""
        mac = self._keyed.copy()
        mac.update(direction + seq.to_bytes(8, "little"))
        mac.update(body)
        return mac.digest()

    def check(self, direction: bytes, seq: int, body: bytes, tag: bytes) -> None:
        """Raise ProtocolError unless `tag` authenticates (direction, seq, body)."""
        if not hmac.compare_digest(self.tag(direction, seq, body), tag):
            raise ProtocolError(f"bad MAC on message {seq} ({direction.decode()})")


@njit(cache=True)
def _gf64_mul(a, b):
    r = np.uint64(0)
    for i in range(64):
        if (b >> np.uint64(i)) & np.uint64(1):
            r ^= a
        carry = a >> np.uint64(63)
        a = a << np.uint64(1)
        if carry:
            a ^= _GF64_LOW
    return r


@njit(cache=True)
def _poly_hash_kernel(words, n_bytes, s):
    h = np.uint64(0)
    for i in range(words.shape[0]):
        h = _gf64_mul(h ^ words[i], s)
    return _gf64_mul(h ^ np.uint64(n_bytes), s)


def poly_hash64(data: bytes, s: int) -> int:
    """Polynomial hash over GF(2^64) of `data` (zero-padded 64-bit LE words, then its length)."""
    padded = data + b"\x00" * (-len(data) % 8)
    words = np.frombuffer(padded, dtype="<u8").astype(np.uint64)
    return int(_poly_hash_kernel(words, len(data), np.uint64(s)))


class WegmanCarterAuthenticator:
    """One-time Wegman-Carter tags: GF(2^64) polynomial hash XOR a per-message pad."""

    tag_bytes = 8

    def __init__(self, pool: KeyPool, pads_per_direction: int = 2048) -> None:
        if pads_per_direction < 1:
            raise QkdInputError(f"pads_per_direction must be >= 1, got {pads_per_direction}")
        key = int.from_bytes(pool.take(WC_HASH_KEY_BYTES), "little")
        self._s = key or 1  # a zero hash key would make every tag the bare pad
        self._pads = {
            b"A->B": pool.take(WC_PAD_BYTES * pads_per_direction),
            b"B->A": pool.take(WC_PAD_BYTES * pads_per_direction),
        }
        self.key_bytes_consumed = WC_HASH_KEY_BYTES + 2 * WC_PAD_BYTES * pads_per_direction

    def tag(self, direction: bytes, seq: int, body: bytes) -> bytes:
        """Tag of message `seq` sent in `direction` (uses that message's one-time pad)."""
        pads = self._pads.get(direction)
        if pads is None:
            raise ProtocolError(f"unknown direction {direction!r}")
        if (seq + 1) * WC_PAD_BYTES > len(pads):
            raise ProtocolError(f"one-time pads exhausted at message {seq} ({direction.decode()})")
        pad = int.from_bytes(pads[seq * WC_PAD_BYTES:(seq + 1) * WC_PAD_BYTES], "little")
        h = poly_hash64(direction + seq.to_bytes(8, "little") + body, self._s)
        return (h ^ pad).to_bytes(8, "little")

    def check(self, direction: bytes, seq: int, body: bytes, tag: bytes) -> None:
        """Raise ProtocolError unless `tag` authenticates (direction, seq, body)."""
        if not hmac.compare_digest(self.tag(direction, seq, body), tag):
            raise ProtocolError(f"bad MAC on message {seq} ({direction.decode()})")


def make_authenticator(pool: KeyPool, mac: str):
    """The authenticator named `mac`: "hmac-sha256", "blake2b" or "wegman-carter"."""
    if mac == "hmac-sha256":
        return HmacAuthenticator(pool)
    if mac == "blake2b":
        return Blake2bAuthenticator(pool)
    if mac == "wegman-carter":
        return WegmanCarterAuthenticator(pool)
    raise QkdInputError(f"unknown MAC {mac!r}; use one of {MACS}")
