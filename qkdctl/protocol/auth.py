"""Message authentication for the post-processing channel, keyed from pre-shared key.

`KeyPool` holds pre-shared authentication key material (the key store supplies it later;
tests pass the same random bytes to both parties) and accounts for every byte consumed.

`HmacAuthenticator` (the default) computes HMAC-SHA256 with a 32-byte session key taken
once from the pool when the channel is opened, truncated to `tag_bytes` (default 32).
Key consumed: 32 bytes per session, 0 bytes per message.  Security is computational (the
PRF security of HMAC-SHA256), not information-theoretic: a one-time Wegman-Carter tag
would consume fresh key per message instead.  The MAC input binds a direction label (so a
reflected message fails), the sequence number and the encoded message.
"""

from __future__ import annotations

import hashlib
import hmac

from qkdctl.core.errors import ProtocolError, QkdInputError

HMAC_SESSION_KEY_BYTES = 32


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
