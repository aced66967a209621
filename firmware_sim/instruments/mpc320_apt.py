"""Emulated Thorlabs MPC320 motorized paddle controller speaking APT over a serial pty.

Paddles 1, 2, 3 answer to channel idents 1, 2, 4; positions run 0..1370 steps
= 0..170 degrees.  Moves take time: |distance| / speed with speed =
velocity% x 400 deg/s (POL_SET_PARAMS, 10..100 %, default 50 %), so a client's
timeout can expire before MOVE_COMPLETED.  Messages handled:

    MOD_IDENTIFY 0x0223                     (no reply; counted)
    HW_REQ_INFO 0x0005                   -> HW_GET_INFO 0x0006 (84 data bytes)
    MOD_SET_CHANENABLESTATE 0x0210          param1 ident mask, param2 1 enable / 2 disable
    MOD_REQ_CHANENABLESTATE 0x0211       -> MOD_GET_CHANENABLESTATE 0x0212
    MOT_MOVE_HOME 0x0443                 -> MOT_MOVE_HOMED 0x0444 when at home_position
    MOT_MOVE_ABSOLUTE 0x0453 "<Hl"       -> MOT_MOVE_COMPLETED 0x0464 + status when there
    MOT_MOVE_JOG 0x046A                  -> MOT_MOVE_COMPLETED 0x0464 + status (param2 1 forward, 2 reverse)
    MOT_MOVE_STOP 0x0465                 -> MOT_MOVE_STOPPED 0x0466 + status
    MOT_REQ_USTATUSUPDATE 0x0490         -> MOT_GET_USTATUSUPDATE 0x0491 + status
    HW_START_UPDATEMSGS 0x0011           -> MOT_GET_USTATUSUPDATE for paddles 1, 2, 4 every update_period_s
    HW_STOP_UPDATEMSGS 0x0012               (updates stop)
    MOT_ACK_USTATUSUPDATE 0x0492            (keep-alive; without one, updates stop after
                                             updates_without_ack rounds)
    POL_SET_PARAMS 0x0530 "<HHHHHH"         not_used, velocity %, home_position, jog1..3
    POL_REQ_PARAMS 0x0531                -> POL_GET_PARAMS 0x0532

Status payload (14 bytes) "<HlHhI": ident, position steps, velocity steps/s,
motor current mA, status bits (STATUS_* below).  Rejected commands (bad ident,
disabled paddle, position or parameter out of range) get HW_RICHRESPONSE 0x0081
"<HH64s": offending msg_id, RICH_* code, ASCII note.  A new move on a moving
paddle retargets it (only the last move completes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from firmware_sim.instruments import apt

STEPS_MAX = 1370
DEG_MAX = 170.0
DEG_PER_STEP = DEG_MAX / STEPS_MAX
MAX_SPEED_DEG_S = 400.0
IDENTS = {1: 1, 2: 2, 4: 3}  # channel ident -> paddle number
STATUS = struct.Struct("<HlHhI")
PARAMS = struct.Struct("<HHHHHH")
RICH = struct.Struct("<HH64s")
INFO = struct.Struct("<I8sH4s48s12sHHH")

STATUS_MOVING_FORWARD = 0x00000010
STATUS_MOVING_REVERSE = 0x00000020
STATUS_HOMING = 0x00000200
STATUS_HOMED = 0x00000400
STATUS_ENABLED = 0x80000000

RICH_OUT_OF_RANGE = 1
RICH_DISABLED = 2
RICH_BAD_CHANNEL = 3

SERIAL_NUMBER = 38000001


@dataclass
class _Motion:
    start_steps: int
    target_steps: int
    t0_s: float
    t1_s: float
    homing: bool


@dataclass
class _Paddle:
    ident: int
    number: int
    steps: int
    enabled: bool = True
    homed: bool = False
    motion: _Motion | None = None


class Mpc320Firmware:
    """APT firmware of the MPC320 (a `SerialFirmware`); paddle angles live in the SimBench."""

    terminator = b""

    def __init__(self, bench, update_period_s: float = 0.1, updates_without_ack: int = 50) -> None:
        self.bench = bench
        self.update_period_s = update_period_s
        self.updates_without_ack = updates_without_ack
        self._next_update_s: float | None = None
        self._unacked_updates = 0
        self.parser = apt.AptParser()
        self.velocity_pct = 50
        self.home_steps = 0
        self.jog_steps = [100, 100, 100]
        self.identify_count = 0
        self.keepalive_count = 0
        self.paddles = {
            ident: _Paddle(ident, number, int(round(bench.paddle_deg(number) / DEG_PER_STEP)))
            for ident, number in IDENTS.items()
        }

    # --- motion -------------------------------------------------------------
    def speed_steps_s(self) -> float:
        """Paddle speed in steps per second at the current velocity setting."""
        return self.velocity_pct / 100.0 * MAX_SPEED_DEG_S / DEG_PER_STEP

    def _position(self, paddle: _Paddle, now_s: float) -> int:
        m = paddle.motion
        if m is None:
            return paddle.steps
        if now_s >= m.t1_s or m.t1_s <= m.t0_s:
            return m.target_steps
        frac = (now_s - m.t0_s) / (m.t1_s - m.t0_s)
        return int(round(m.start_steps + frac * (m.target_steps - m.start_steps)))

    def _start(self, paddle: _Paddle, target: int, now_s: float, homing: bool) -> None:
        start = self._position(paddle, now_s)
        duration = abs(target - start) / self.speed_steps_s()
        paddle.steps = start
        paddle.motion = _Motion(start, target, now_s, now_s + duration, homing)

    def _settle(self, paddle: _Paddle, steps: int) -> None:
        paddle.steps = steps
        paddle.motion = None
        self.bench.set_paddle_deg(paddle.number, steps * DEG_PER_STEP)

    def _status(self, paddle: _Paddle, now_s: float) -> bytes:
        bits = STATUS_ENABLED if paddle.enabled else 0
        velocity = 0
        m = paddle.motion
        if m is not None and now_s < m.t1_s:
            bits |= STATUS_HOMING if m.homing else 0
            bits |= STATUS_MOVING_FORWARD if m.target_steps >= m.start_steps else STATUS_MOVING_REVERSE
            velocity = int(round(self.speed_steps_s()))
        if paddle.homed:
            bits |= STATUS_HOMED
        return STATUS.pack(paddle.ident, self._position(paddle, now_s), velocity, 0, bits)

    # --- replies ------------------------------------------------------------
    @staticmethod
    def _rich(msg_id: int, code: int, note: str) -> bytes:
        return apt.encode_long(apt.HW_RICHRESPONSE, RICH.pack(msg_id, code, note.encode("ascii")))

    def _info(self) -> bytes:
        data = INFO.pack(
            SERIAL_NUMBER, b"MPC320\x00\x00", 16, bytes([0, 1, 1, 0]),
            b"MPC320 motorised polarisation controller (qkdctl sim)", bytes(12), 1, 0, 3,
        )
        return apt.encode_long(apt.HW_GET_INFO, data)

    def _paddle_or_error(self, msg_id: int, ident: int) -> tuple[_Paddle | None, bytes | None]:
        paddle = self.paddles.get(ident)
        if paddle is None:
            return None, self._rich(msg_id, RICH_BAD_CHANNEL, f"channel ident {ident} not 1, 2 or 4")
        return paddle, None

    def handle(self, msg: apt.AptMessage, now_s: float) -> list[bytes]:
        """Act on one message; return immediate replies."""
        if msg.msg_id == apt.MOD_IDENTIFY:
            self.identify_count += 1
            return []
        if msg.msg_id == apt.MOT_ACK_USTATUSUPDATE:
            self.keepalive_count += 1
            self._unacked_updates = 0
            return []
        if msg.msg_id == apt.HW_START_UPDATEMSGS:
            self._unacked_updates = 0
            self._next_update_s = now_s + self.update_period_s
            return []
        if msg.msg_id == apt.HW_STOP_UPDATEMSGS:
            self._next_update_s = None
            return []
        if msg.msg_id == apt.HW_REQ_INFO:
            return [self._info()]
        if msg.msg_id == apt.POL_REQ_PARAMS:
            data = PARAMS.pack(0, self.velocity_pct, self.home_steps, *self.jog_steps)
            return [apt.encode_long(apt.POL_GET_PARAMS, data)]
        if msg.msg_id == apt.POL_SET_PARAMS:
            _, velocity, home, *jogs = PARAMS.unpack(msg.data)
            if not 10 <= velocity <= 100 or home > STEPS_MAX or any(j > STEPS_MAX for j in jogs):
                return [self._rich(msg.msg_id, RICH_OUT_OF_RANGE, "velocity 10..100 %, positions 0..1370")]
            self.velocity_pct, self.home_steps, self.jog_steps = velocity, home, list(jogs)
            return []
        if msg.msg_id == apt.MOD_SET_CHANENABLESTATE:
            if msg.param1 == 0 or msg.param1 & ~0x07 or msg.param2 not in (1, 2):
                return [self._rich(msg.msg_id, RICH_BAD_CHANNEL, "ident mask of 1, 2, 4; state 1 or 2")]
            for ident, paddle in self.paddles.items():
                if msg.param1 & ident:
                    paddle.enabled = msg.param2 == 1
                    if not paddle.enabled and paddle.motion is not None:
                        self._settle(paddle, self._position(paddle, now_s))
            return []
        if msg.msg_id == apt.MOT_MOVE_ABSOLUTE:
            ident, target = struct.unpack("<Hl", msg.data)
            paddle, error = self._paddle_or_error(msg.msg_id, ident)
            if paddle is None:
                return [error]
            if not paddle.enabled:
                return [self._rich(msg.msg_id, RICH_DISABLED, f"paddle ident {ident} disabled")]
            if not 0 <= target <= STEPS_MAX:
                return [self._rich(msg.msg_id, RICH_OUT_OF_RANGE, f"position {target} not in 0..1370")]
            self._start(paddle, target, now_s, homing=False)
            return []
        ident = msg.param1
        paddle, error = self._paddle_or_error(msg.msg_id, ident)
        if paddle is None:
            return [error]
        if msg.msg_id == apt.MOD_REQ_CHANENABLESTATE:
            return [apt.encode_short(apt.MOD_GET_CHANENABLESTATE, ident, 1 if paddle.enabled else 2)]
        if msg.msg_id == apt.MOT_REQ_USTATUSUPDATE:
            return [apt.encode_long(apt.MOT_GET_USTATUSUPDATE, self._status(paddle, now_s))]
        if msg.msg_id == apt.MOT_MOVE_HOME:
            if not paddle.enabled:
                return [self._rich(msg.msg_id, RICH_DISABLED, f"paddle ident {ident} disabled")]
            self._start(paddle, self.home_steps, now_s, homing=True)
            return []
        if msg.msg_id == apt.MOT_MOVE_JOG:
            if not paddle.enabled:
                return [self._rich(msg.msg_id, RICH_DISABLED, f"paddle ident {ident} disabled")]
            if msg.param2 not in (1, 2):
                return [self._rich(msg.msg_id, RICH_OUT_OF_RANGE, "jog direction must be 1 or 2")]
            step = self.jog_steps[paddle.number - 1] * (1 if msg.param2 == 1 else -1)
            target = min(STEPS_MAX, max(0, self._position(paddle, now_s) + step))
            self._start(paddle, target, now_s, homing=False)
            return []
        if msg.msg_id == apt.MOT_MOVE_STOP:
            self._settle(paddle, self._position(paddle, now_s))
            return [apt.encode_long(apt.MOT_MOVE_STOPPED, self._status(paddle, now_s))]
        return []  # HW_DISCONNECT: nothing to do on a pty

    # --- SerialFirmware -----------------------------------------------------
    def feed(self, data: bytes, now_s: float) -> list[bytes]:
        """Parse host bytes (resynchronizing past garbage) and answer each message."""
        replies = self.tick(now_s)
        for msg in self.parser.feed(data):
            replies.extend(self.handle(msg, now_s))
        return replies

    def next_event_s(self) -> float | None:
        """When the next move completes or the next status update is due."""
        ends = [p.motion.t1_s for p in self.paddles.values() if p.motion is not None]
        if self._next_update_s is not None:
            ends.append(self._next_update_s)
        return min(ends) if ends else None

    def tick(self, now_s: float) -> list[bytes]:
        """Complete the moves that are due."""
        replies = []
        for paddle in self.paddles.values():
            m = paddle.motion
            if m is None or now_s < m.t1_s:
                continue
            self._settle(paddle, m.target_steps)
            if m.homing:
                paddle.homed = True
                replies.append(apt.encode_short(apt.MOT_MOVE_HOMED, paddle.ident, 0))
            else:
                replies.append(apt.encode_long(apt.MOT_MOVE_COMPLETED, self._status(paddle, now_s)))
        if self._next_update_s is not None and now_s >= self._next_update_s:
            for paddle in self.paddles.values():
                replies.append(apt.encode_long(apt.MOT_GET_USTATUSUPDATE, self._status(paddle, now_s)))
            self._unacked_updates += 1
            self._next_update_s = (
                None if self._unacked_updates >= self.updates_without_ack else now_s + self.update_period_s
            )
        return replies
