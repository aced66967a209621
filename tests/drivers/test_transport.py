"""Transport behaviour over real links (pyserial socket:// and loop://, pyvisa-py TCPIP SOCKET) and a fake one."""

import threading
import time

import pytest

from drivers.transport import DeviceError, Transport, open_link, parse_scpi_error
from qkdctl.core.errors import InstrumentError, QkdInputError
from tests.drivers.fake_link import fake_transport
from tests.drivers.servers import TcpServer

RESOURCES = {
    "serial": lambda port: f"socket://127.0.0.1:{port}",
    "visa": lambda port: f"TCPIP0::127.0.0.1::{port}::SOCKET",
}


@pytest.fixture
def silent():
    with TcpServer("silent") as server:
        yield server


@pytest.fixture
def echo():
    with TcpServer("echo") as server:
        yield server


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_query_to_silent_instrument_times_out_within_timeout(kind, silent):
    with Transport(open_link(RESOURCES[kind](silent.port)), name="voa", timeout_s=0.2, retries=0) as t:
        start = time.monotonic()
        with pytest.raises(InstrumentError, match=r"voa: ':INP1:ATT\?': timeout"):
            t.query(":INP1:ATT?")
        assert time.monotonic() - start < 0.2 + 0.4


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_idempotent_query_is_retried_non_idempotent_is_not(kind, silent):
    with Transport(open_link(RESOURCES[kind](silent.port)), name="voa", timeout_s=0.2, retries=2) as t:
        start = time.monotonic()
        with pytest.raises(InstrumentError):
            t.query("A?")
        assert time.monotonic() - start < 3 * 0.2 + 0.6
        with pytest.raises(InstrumentError):
            t.query("B?", idempotent=False)
        t.write("C 1")
        time.sleep(0.1)
    assert silent.received == b"A?\n" * 3 + b"B?\n" + b"C 1\n"


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_round_trip_and_threads_share_the_lock(kind, echo):
    with Transport(open_link(RESOURCES[kind](echo.port)), name="echo", timeout_s=1.0) as t:
        assert t.query("1.5", float) == 1.5
        results: dict[int, list[str]] = {}

        def worker(k: int) -> None:
            results[k] = [t.query(f"thread{k}-{i}") for i in range(20)]

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    for k in range(4):
        assert results[k] == [f"thread{k}-{i}" for i in range(20)]


def test_loop_url_binary_and_lines():
    with Transport(open_link("loop://"), name="loop", timeout_s=0.2, read_termination="\r\n") as t:
        t.write_raw(b"\x01\x02\x03")
        assert t.read_exact(3, label="bin") == b"\x01\x02\x03"
        t.write_raw(b"abc\r\ndef")
        assert t.read_line(label="line") == "abc"
        with pytest.raises(InstrumentError, match=r"loop: 'line': timeout .*received b'def'"):
            t.read_line(label="line")


def test_closed_transport_raises_and_close_is_idempotent():
    t, link = fake_transport([])
    t.close()
    t.close()
    assert link.closed
    with pytest.raises(InstrumentError, match="transport is closed"):
        t.write("X")


def test_retry_discards_stale_input_and_counts_attempts():
    t, link = fake_transport([(b"Q?\n", b"junk"), (b"Q?\n", b"7\n")], retries=1)
    assert t.query("Q?", int) == 7
    assert link.discards == 1
    link.assert_done()


def test_error_queue_drain_limit():
    t, link = fake_transport([(b":SYST:ERR?\n", b'-100,"Command error"\n')] * 32)
    with pytest.raises(DeviceError, match="error queue not empty after 32 reads"):
        t.check_errors(after="X")
    link.assert_done()


def test_parse_scpi_error():
    assert parse_scpi_error('+0,"No error"') == (0, "No error")
    assert parse_scpi_error('-222,"Data out of range"') == (-222, "Data out of range")
    with pytest.raises(ValueError):
        parse_scpi_error("OK")


def test_open_link_rejects_bad_resources():
    with pytest.raises(QkdInputError, match="unrecognised instrument resource 'nonsense'"):
        open_link("nonsense")
    with pytest.raises(QkdInputError, match="non-empty"):
        open_link("")
    with pytest.raises(InstrumentError, match="cannot open serial port '/dev/does-not-exist'"):
        open_link("/dev/does-not-exist")


def test_transport_arguments_checked():
    t, _ = fake_transport([])
    with pytest.raises(QkdInputError, match="timeout_s must be > 0"):
        Transport(t.link, name="x", timeout_s=0)
    with pytest.raises(QkdInputError, match="retries must be >= 0"):
        Transport(t.link, name="x", retries=-1)


def test_late_reply_is_discarded_before_the_next_command():
    t, link = fake_transport([(b"A?\n", b""), (b"B?\n", b"2\n")], retries=0)
    with pytest.raises(InstrumentError, match="timeout"):
        t.query("A?")
    link.inbox += b"1\n"  # the late reply to A?
    assert t.query("B?", int) == 2
    assert link.discards == 1
    link.assert_done()


def test_link_failure_reopens_before_the_next_exchange(echo):
    with Transport(open_link(f"socket://127.0.0.1:{echo.port}"), name="echo", timeout_s=0.5, retries=0) as t:
        assert t.query("1") == "1"
        for conn in echo._conns:
            conn.close()
        with pytest.raises(InstrumentError, match="link failure"):
            t.query("2")
        assert t.query("3") == "3"


def test_two_timeouts_in_a_row_reopen_the_link():
    t, link = fake_transport([(b"A?\n", b""), (b"A?\n", b""), (b"A?\n", b"5\n")], retries=0)
    for _ in range(2):
        with pytest.raises(InstrumentError, match="timeout"):
            t.query("A?")
    assert link.reopens == 0
    assert t.query("A?", int) == 5
    assert link.reopens == 1
    link.assert_done()
