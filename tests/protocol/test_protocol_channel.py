"""Messages, MAC, sequencing and transports of the protocol channel."""

import threading

import numpy as np
import pytest

from qkdctl.core.errors import ProtocolError, QkdInputError
from qkdctl.protocol import tcp
from qkdctl.protocol.auth import HMAC_SESSION_KEY_BYTES, KeyPool
from qkdctl.protocol.channel import direct_pair, in_process_pair
from qkdctl.protocol.messages import LAYOUTS, Message, decode, encode

MACS = ["hmac-sha256", "blake2b"]


def _pair(key=b"k" * 64, mac="hmac-sha256"):
    return in_process_pair(KeyPool(key), KeyPool(key), mac)


def test_encode_decode_roundtrip_all_field_types():
    arr = np.array([1, -2, 3], dtype=np.int32)
    msg = Message("x/y", {"i": -5, "f": 0.25, "b": b"\x00\x01", "a": arr,
                          "u": np.array([7], dtype=np.uint64)})
    back = decode(encode(msg))
    assert back.kind == "x/y"
    assert back.int("i") == -5 and back.float("f") == 0.25 and back.bytes("b") == b"\x00\x01"
    assert back.array("a", np.int32, length=3).tolist() == [1, -2, 3]
    assert back.array("u", np.uint64).tolist() == [7]


@pytest.mark.parametrize("cut", [1, 5, 12])
def test_decode_rejects_truncated(cut):
    data = encode(Message("k", {"a": np.arange(4, dtype=np.int32)}))
    with pytest.raises(ProtocolError):
        decode(data[:-cut])


def test_decode_rejects_trailing_bytes_and_unknown_tag():
    data = encode(Message("k", {"i": 1}))
    with pytest.raises(ProtocolError, match="trailing"):
        decode(data + b"\x00")
    with pytest.raises(ProtocolError, match="unknown type tag"):
        decode(data.replace(b"i\x01", b"z\x01"))


def _layout_example(layout):
    fields = {name: 7 + i for i, name in enumerate(layout.ints)}
    for name, code in layout.arrays:
        fields[name] = b"\x01\x02" if code == "bytes" else np.arange(5).astype(code)
    return Message(layout.kind, fields)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.kind)
def test_fixed_layouts_roundtrip_compactly_and_reject_defects(layout):
    msg = _layout_example(layout)
    data = encode(msg)
    assert data[:2] == bytes([0, layout.code])
    back = decode(data)
    assert back.kind == layout.kind and back.fields.keys() == msg.fields.keys()
    for name, value in msg.fields.items():
        assert np.array_equal(back.fields[name], value) and type(back.fields[name]) is type(value)
        if isinstance(value, np.ndarray):
            assert back.fields[name].dtype == value.dtype
    with pytest.raises(ProtocolError, match="trailing"):
        decode(data + b"\x00")
    if len(data) > 2:
        with pytest.raises(ProtocolError, match="truncated"):
            decode(data[:-1])


def test_off_layout_messages_fall_back_to_generic_and_unknown_code_is_rejected():
    odd = [Message("cascade/pass", {"index": 0}),  # missing fields
           Message("cascade/parities", {"count": 3, "bits": np.zeros(1, np.int32)}),  # dtype
           Message("confirm/result", {"ok": 1.5})]  # type
    for msg in odd:
        data = encode(msg)
        assert data[0] != 0
        back = decode(data)
        assert back.kind == msg.kind and back.fields.keys() == msg.fields.keys()
    with pytest.raises(ProtocolError, match="layout code"):
        decode(b"\x00\xff")
    with pytest.raises(ProtocolError, match="truncated"):
        decode(b"\x00")


def test_accessors_check_kind_fields_dtypes_and_bounds():
    msg = Message("k", {"i": 3, "a": np.zeros(2, np.uint8)})
    with pytest.raises(ProtocolError, match="unexpected message kind"):
        msg.expect("other")
    with pytest.raises(ProtocolError, match="lacks field"):
        msg.int("missing")
    with pytest.raises(ProtocolError, match="dtype"):
        msg.array("a", np.int32)
    with pytest.raises(ProtocolError, match="length"):
        msg.array("a", np.uint8, length=3)
    with pytest.raises(ProtocolError, match="outside"):
        msg.int("i", 0, 2)


def test_key_pool_accounts_and_exhausts():
    pool = KeyPool(bytes(range(40)))
    assert pool.take(8) == bytes(range(8))
    assert pool.consumed_bytes == 8 and pool.remaining_bytes == 32
    with pytest.raises(ProtocolError, match="exhausted"):
        pool.take(33)
    with pytest.raises(QkdInputError):
        pool.take(0)


def test_in_process_pair_delivers_in_order_and_counts():
    alice, bob = _pair()
    bob.send(Message("q", {"i": 1}))
    assert alice.recv().int("i") == 1
    alice.send(Message("r", {"i": 2}))
    alice.send(Message("r", {"i": 3}))
    assert [bob.recv().int("i"), bob.recv().int("i")] == [2, 3]
    assert bob.stats.messages_sent == 1 and bob.stats.messages_received == 2
    assert bob.stats.round_trips == 1 and alice.stats.round_trips == 0
    assert bob.stats.bytes_sent == alice.stats.bytes_received > 0
    assert bob.auth_key_bytes == HMAC_SESSION_KEY_BYTES


def _raw_frames(receiver, count):
    """Take the next `count` frames off the receiver's wire; return them and a re-injector."""
    frames = [receiver._inbox.get_nowait() for _ in range(count)]
    return frames, receiver._inbox.put


@pytest.mark.parametrize("mac", MACS)
def test_forged_frame_is_rejected_and_channel_aborts(mac):
    alice, bob = _pair(mac=mac)
    bob.send(Message("q", {"i": 1}))
    frames, put = _raw_frames(alice, 1)
    tampered = bytearray(frames[0])
    tampered[12] ^= 0x01
    put(bytes(tampered))
    with pytest.raises(ProtocolError, match="bad MAC"):
        alice.recv()
    put(frames[0])
    with pytest.raises(ProtocolError, match="aborted"):
        alice.recv()
    with pytest.raises(ProtocolError, match="aborted"):
        alice.send(Message("r", {}))


@pytest.mark.parametrize("mac", MACS)
def test_wrong_key_is_rejected(mac):
    alice = in_process_pair(KeyPool(b"a" * 64), KeyPool(b"b" * 64), mac)
    a, b = alice
    b.send(Message("q", {}))
    with pytest.raises(ProtocolError, match="bad MAC"):
        a.recv()


@pytest.mark.parametrize("mac", MACS)
def test_replay_reorder_truncation_and_reflection_are_rejected(mac):
    for attack in ("replay", "reorder", "truncate", "reflect"):
        alice, bob = _pair(mac=mac)
        bob.send(Message("q", {"i": 1}))
        bob.send(Message("q", {"i": 2}))
        frames, put = _raw_frames(alice, 2)
        if attack == "replay":
            put(frames[0])
            alice.recv()
            put(frames[0])
            match = "replayed"
        elif attack == "reorder":
            put(frames[1])
            match = "reordered"
        elif attack == "truncate":
            put(frames[0][:20])
            match = "truncated|bad MAC"
        else:  # Bob's own frame sent back to Bob
            bob._inbox.put(frames[0])
            with pytest.raises(ProtocolError, match="bad MAC"):
                bob.recv()
            continue
        with pytest.raises(ProtocolError, match=match):
            alice.recv()


class _Echo:
    finished = False

    def handle(self, msg):
        return [Message("r", {"i": msg.int("i") + 1})] if msg.int("i") >= 0 else []


@pytest.mark.parametrize("mac", MACS)
def test_direct_pair_authenticates_sequences_and_counts(mac):
    alice, bob = direct_pair(KeyPool(b"d" * 64), KeyPool(b"d" * 64), _Echo(), mac)
    bob.send(Message("q", {"i": 1}))
    assert bob.recv().int("i") == 2
    assert bob.stats.round_trips == 1 and alice.stats.messages_received == 1
    assert bob.stats.bytes_sent == alice.stats.bytes_received > 0
    bob.send(Message("q", {"i": -1}))  # no reply: a recv can never be answered
    with pytest.raises(ProtocolError, match="no message"):
        bob.recv()
    _, bob2 = direct_pair(KeyPool(b"d" * 64), KeyPool(b"d" * 64), _Echo(), mac)
    bob2.send(Message("q", {"i": 1}))
    frame = bytearray(bob2._inbox.popleft())
    frame[9] ^= 0x04
    bob2._inbox.append(bytes(frame))
    with pytest.raises(ProtocolError, match="bad MAC"):
        bob2.recv()
    with pytest.raises(ProtocolError, match="aborted"):
        bob2.recv()


def test_closed_peer_and_timeout_raise():
    alice, bob = _pair()
    with pytest.raises(ProtocolError, match="within"):
        alice.recv(timeout_s=0.01)
    alice2, bob2 = _pair()
    bob2.close()
    with pytest.raises(ProtocolError, match="closed"):
        alice2.recv()


def test_tcp_channel_loopback_two_threads():
    server = tcp.listen()
    port = server.getsockname()[1]
    key = b"t" * 64
    got = {}

    def alice_side():
        ch = tcp.accept(server, KeyPool(key))
        msg = ch.recv()
        ch.send(Message("pong", {"a": msg.array("a", np.int64) * 2}))
        got["alice_stats"] = ch.stats
        ch.close()

    thread = threading.Thread(target=alice_side)
    thread.start()
    bob = tcp.connect("127.0.0.1", port, KeyPool(key))
    bob.send(Message("ping", {"a": np.arange(100000, dtype=np.int64)}))
    reply = bob.recv().expect("pong")
    thread.join()
    server.close()
    assert reply.array("a", np.int64)[-1] == 2 * 99999
    assert bob.stats.round_trips == 1
    assert got["alice_stats"].bytes_received == bob.stats.bytes_sent
    with pytest.raises(ProtocolError, match="closed"):
        bob.recv(timeout_s=2)
    bob.close()


def test_poly_hash_tiny_case_and_random_against_reference():
    from qkdctl.protocol.auth import poly_hash64
    from tests.naive import auth as naive_auth

    assert naive_auth.gf64_mul(1 << 63, 2) == 0x1B  # x^63 * x = x^64 = x^4 + x^3 + x + 1
    assert poly_hash64(b"", 5) == naive_auth.poly_hash64(b"", 5) == 0
    rng = np.random.default_rng(3)
    for size in (1, 7, 8, 9, 100):
        data = rng.bytes(size)
        s = int(rng.integers(1, 2**63))
        assert poly_hash64(data, s) == naive_auth.poly_hash64(data, s)
    assert poly_hash64(b"\x00", 5) != poly_hash64(b"\x00\x00", 5)  # length is bound


def test_wegman_carter_channel_authenticates_and_accounts_key():
    from qkdctl.protocol.auth import WC_HASH_KEY_BYTES, WC_PAD_BYTES

    key = np.random.default_rng(4).bytes(40000)
    alice, bob = in_process_pair(KeyPool(key), KeyPool(key), mac="wegman-carter")
    bob.send(Message("q", {"a": np.arange(50, dtype=np.int32)}))
    assert alice.recv().array("a", np.int32)[-1] == 49
    assert bob.auth_key_bytes == WC_HASH_KEY_BYTES + 2 * 2048 * WC_PAD_BYTES
    bob.send(Message("q", {"i": 1}))
    frame = bytearray(alice._inbox.get_nowait())
    frame[-1] ^= 0x80
    alice._inbox.put(bytes(frame))
    with pytest.raises(ProtocolError, match="bad MAC"):
        alice.recv()


def test_wegman_carter_pads_run_out_and_unknown_mac_is_rejected():
    from qkdctl.protocol.auth import WegmanCarterAuthenticator

    auth = WegmanCarterAuthenticator(KeyPool(bytes(range(40))), pads_per_direction=2)
    auth.tag(b"A->B", 1, b"x")
    with pytest.raises(ProtocolError, match="exhausted"):
        auth.tag(b"A->B", 2, b"x")
    with pytest.raises(QkdInputError, match="unknown MAC"):
        in_process_pair(KeyPool(b"k" * 64), KeyPool(b"k" * 64), mac="crc32")


def test_blake2b_tags_bind_direction_sequence_and_body():
    from qkdctl.protocol.auth import BLAKE2B_SESSION_KEY_BYTES, Blake2bAuthenticator

    pool = KeyPool(bytes(range(64)))
    auth = Blake2bAuthenticator(pool)
    assert pool.consumed_bytes == auth.key_bytes_consumed == BLAKE2B_SESSION_KEY_BYTES
    tag = auth.tag(b"A->B", 3, b"body")
    assert len(tag) == 32
    assert tag == auth.tag(b"A->B", 3, b"body")  # the keyed state is copied, not consumed
    assert len({tag, auth.tag(b"B->A", 3, b"body"), auth.tag(b"A->B", 4, b"body"),
                auth.tag(b"A->B", 3, b"bodY")}) == 4
    with pytest.raises(QkdInputError, match="tag length"):
        Blake2bAuthenticator(KeyPool(bytes(64)), tag_bytes=8)
