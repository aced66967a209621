"""A small stand-in with the SimBench method set, for firmware protocol tests.

It stores settings and, on acquire, returns a deterministic block whose tags
move with the tagger delays, so tests can check that settings reach it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock


@dataclass
class FakeBlock:
    block_id: int
    tags: TagBlock
    alice: AliceRecord
    truth: dict


class FakeBench:
    """Settings store + deterministic blocks (seeded generator given by the test)."""

    def __init__(self, rng: np.random.Generator, channels: tuple[int, ...] = (0, 1, 2, 3, 4)) -> None:
        self._lock = threading.Lock()
        self._rng = rng
        self.channels = channels
        self.att = {ch: 0.0 for ch in range(1, 5)}
        self.out = {ch: True for ch in range(1, 5)}
        self.wav = {ch: 1550e-9 for ch in range(1, 5)}
        self.epc = {ch: 0 for ch in range(1, 5)}
        self.paddles = {p: 0.0 for p in (1, 2, 3)}
        self.delay = {ch: 0 for ch in channels}
        self.dead = {ch: 2000 for ch in channels}
        self.trig = {ch: 0.5 for ch in channels}
        self.enabled = {ch: True for ch in channels}
        self.now_s = 0.0
        self._next_block = 0

    def set_attenuation_db(self, ch: int, db: float) -> None:
        self.att[ch] = float(db)

    def attenuation_db(self, ch: int) -> float:
        return self.att[ch]

    def set_output_enabled(self, ch: int, on: bool) -> None:
        self.out[ch] = bool(on)

    def output_enabled(self, ch: int) -> bool:
        return self.out[ch]

    def set_wavelength_m(self, ch: int, m: float) -> None:
        self.wav[ch] = float(m)

    def wavelength_m(self, ch: int) -> float:
        return self.wav[ch]

    def set_epc_voltage_mv(self, ch: int, mv: float) -> None:
        self.epc[ch] = mv

    def epc_voltage_mv(self, ch: int) -> float:
        return self.epc[ch]

    def set_paddle_deg(self, paddle: int, deg: float) -> None:
        self.paddles[paddle] = float(deg)

    def paddle_deg(self, paddle: int) -> float:
        return self.paddles[paddle]

    def set_tagger_delay_ps(self, ch: int, ps: int) -> None:
        self.delay[ch] = int(ps)

    def tagger_delay_ps(self, ch: int) -> int:
        return self.delay[ch]

    def set_tagger_dead_time_ps(self, ch: int, ps: int) -> None:
        self.dead[ch] = int(ps)

    def tagger_dead_time_ps(self, ch: int) -> int:
        return self.dead[ch]

    def set_trigger_level_v(self, ch: int, v: float) -> None:
        self.trig[ch] = float(v)

    def trigger_level_v(self, ch: int) -> float:
        return self.trig[ch]

    def set_tagger_channel_enabled(self, ch: int, on: bool) -> None:
        self.enabled[ch] = bool(on)

    def tagger_channel_enabled(self, ch: int) -> bool:
        return self.enabled[ch]

    def tagger_channels(self) -> dict[str, int]:
        return dict(zip(("sync", "H", "V", "D", "A"), self.channels))

    def count_rates_hz(self) -> dict[int, float]:
        return {ch: 1000.0 * (ch + 1) for ch in self.channels}

    def acquire(self, duration_s: float) -> FakeBlock:
        with self._lock:
            start_ps = int(round(self.now_s * 1e12))
            stop_ps = start_ps + int(round(duration_s * 1e12))
            n_slots = 64
            slot_ps = (stop_ps - start_ps) // n_slots
            chans = self._rng.choice(np.array(self.channels, dtype=np.int32), size=n_slots)
            t = start_ps + np.arange(n_slots, dtype=np.int64) * slot_ps
            t = t + np.array([self.delay[int(c)] for c in chans], dtype=np.int64)
            order = np.argsort(t, kind="stable")
            tags = TagBlock(t[order], chans[order], start_ps, stop_ps)
            alice = AliceRecord(
                self._rng.integers(0, 2, n_slots), self._rng.integers(0, 2, n_slots),
                self._rng.integers(0, 3, n_slots), first_slot=self._next_block * n_slots,
            )
            block = FakeBlock(self._next_block, tags, alice, {})
            self._next_block += 1
            self.now_s += duration_s
            return block
