"""Start and stop every emulated instrument of a simulated bench.

`SimServer(bench)` puts the VOA (SCPI over TCP), the EPC-400 and MPC320
polarization controllers (serial ptys), the time tagger (TCP) and Alice's host
(TCP) on free loopback ports / fresh ptys, all sharing one bench, one
`Faults` registry and one block store.  Use it as a context manager (or a
pytest fixture); `stop()` closes every socket, pty and thread.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import asdict, dataclass
from typing import Callable

from firmware_sim.config import SimConfig
from firmware_sim.faults import Faults
from firmware_sim.instruments.alice_host import AliceHost
from firmware_sim.instruments.block_store import BlockStore
from firmware_sim.instruments.epc400 import Epc400Firmware
from firmware_sim.instruments.mpc320_apt import Mpc320Firmware
from firmware_sim.instruments.ptys import PtyPort
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.tagger_server import TaggerFirmware
from firmware_sim.instruments.voa_scpi import VoaFirmware
from qkdctl.core.errors import InstrumentError

INSTRUMENTS = ("voa", "epc", "mpc320", "tagger", "alice")


@dataclass(frozen=True)
class SimResources:
    """Where each instrument answers: VISA string, pty paths, host:port."""

    voa: str
    epc: str
    mpc320: str
    tagger: str
    alice: str

    def as_dict(self) -> dict[str, str]:
        """Instrument name -> resource string."""
        return asdict(self)


class SimServer:
    """All emulated instruments of one bench (threads in this process)."""

    def __init__(
        self, bench, faults: Faults | None = None, store_blocks: int = 8, voa_slots: tuple[int, ...] = (1, 3, 5, 7)
    ) -> None:
        self.bench = bench
        self.faults = faults if faults is not None else Faults()
        self.store = BlockStore(store_blocks)
        self.voa = VoaFirmware(bench, self.faults["voa"], slots=voa_slots)
        self.epc = Epc400Firmware(bench)
        self.mpc320 = Mpc320Firmware(bench)
        self.tagger = TaggerFirmware(bench, self.faults["tagger"], self.store)
        self.alice = AliceHost(self.store, bench)
        self._parts: list[TcpService | PtyPort] = []
        self.resources: SimResources | None = None

    @classmethod
    def from_config(cls, config: SimConfig, seed: int, **kwargs: object) -> "SimServer":
        """A server around a fresh SimBench(config, seed)."""
        from firmware_sim.bench import SimBench

        return cls(SimBench(config, seed), **kwargs)

    def start(self) -> SimResources:
        """Open every port and pty and start serving; return the resource strings."""
        if self.resources is not None:
            return self.resources
        try:
            voa = TcpService("voa", self.voa.session, self.faults["voa"])
            self._parts.append(voa)
            epc = PtyPort("epc", self.epc, self.faults["epc"])
            self._parts.append(epc)
            mpc = PtyPort("mpc320", self.mpc320, self.faults["mpc320"])
            self._parts.append(mpc)
            tagger = TcpService("tagger", self.tagger.session, self.faults["tagger"])
            self._parts.append(tagger)
            alice = TcpService("alice", self.alice.session, self.faults["alice"])
            self._parts.append(alice)
            for part in self._parts:
                part.start()
        except OSError as exc:
            self.stop()
            raise InstrumentError(f"simulated bench could not open its ports/ptys: {exc}") from exc
        self.resources = SimResources(
            voa=f"TCPIP::{voa.host}::{voa.port}::SOCKET",
            epc=epc.path,
            mpc320=mpc.path,
            tagger=f"{tagger.host}:{tagger.port}",
            alice=f"{alice.host}:{alice.port}",
        )
        return self.resources

    def stop(self) -> None:
        """Stop every instrument (idempotent)."""
        parts, self._parts = self._parts, []
        for part in reversed(parts):
            part.stop()
        self.resources = None

    def __enter__(self) -> "SimServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_until_signal(server: SimServer, announce: Callable[[SimResources], None]) -> None:
    """Start server, announce its resources, serve until SIGINT/SIGTERM, then stop cleanly.

    Must run in the main thread (it installs the signal handlers, and restores them).
    """
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        with server:
            announce(server.resources)
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
