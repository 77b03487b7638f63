"""A protocol-aware fuzzer: a hostile (and sometimes well-behaved) peer of a running `RobotServer`.

It speaks the real protocol over real sockets, seeded (the same seed sends the same messages; the
server's timing still varies from run to run). Each round is one scenario:

- streams of plausible targets at 50-1000 Hz from where the arm is, some faster than the velocity cap;
- walks that drive one joint into its position limit at the velocity cap, then fall silent (every
  joint, both sides, in turn);
- targets with bad values (beyond the limits, far from the reference, NaN, out of range, absurd
  feed-forward or gripper widths);
- sequence and timestamp games (duplicates, reordering, gaps, the largest sequence number, stale and
  future stamps);
- Hellos with edge-case rates, names and versions; session takeovers by a second peer; `Stop`;
  `Recover` outside ERROR; heartbeats with random echoes;
- resume attempts near and far from the held pose, bursts of hundreds of targets at once;
- byte-level mutations, random msgpack, random bytes, multipart frames.

What is measured is what reaches the backend (`RecordingBackend`) and the server's own counters.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import msgpack
import numpy as np

from .. import protocol as P
from ..server import RobotServer
from ._client import RawClient
from ._recording import RecordingBackend, motion_ratios

__all__ = ["FuzzConfig", "FuzzReport", "run_fuzz"]

_EDGE_RATES = (0.0, -1.0, 1e-301, 1e-3, 0.999, 1.0, 60.0, 1000.0, 1000.001, 1e4, 1e301, math.inf, math.nan)
_EDGE_NAMES = ("", "x" * 64, "x" * 65, "twin", "\u00e9\u00e8\u4e2d", "\x00")


@dataclass(frozen=True)
class FuzzConfig:
    """What the fuzzer sends."""

    messages: int = 10_000  # messages to send (all kinds together)
    seed: int = 0
    limit_walk_every: int = 60  # a limit walk every this many rounds (0 = none)
    time_budget_s: float = 600.0  # stop early after this long [s]


@dataclass(frozen=True)
class FuzzReport:
    """Figures of one fuzz run (ratios: largest |value| / cap at the backend boundary)."""

    messages: int
    ticks: int
    commands: int
    max_velocity_ratio: float
    max_accel_ratio: float
    max_jerk_ratio: float
    max_position_excess_rad: float  # largest excursion past a position limit (<= 0: never past)
    limit_violations: int  # commands past a limit beyond float rounding (see motion_ratios)
    server_deaths: int
    gate_refusals: int
    position_brakes: int
    accepted: int
    rejected: int
    limit_walks: int
    sessions: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


class _Fuzzer:
    def __init__(self, server: RobotServer, config: FuzzConfig) -> None:
        self.server = server
        self.cfg = config
        self.lim = server.limits
        self.rng = np.random.default_rng(config.seed)
        self.client = RawClient(server.endpoint)
        self.intruder = RawClient(server.endpoint)
        self.walks = 0
        self.walk_plan = [(j, side) for j in range(7) for side in (1, -1)]
        self.q = np.array(self.client.handshake().q_rad)
        self.mode = P.Mode.HOLD

    # ------------------------------------------------------------------ sending
    @property
    def sent(self) -> int:
        return self.client.n_sent + self.intruder.n_sent

    def _target(self, q, dq=None, **kw) -> None:
        self.client.target(q, dq, **kw)

    def _raw(self, data) -> None:
        self.client.send_raw(data)

    def _sync(self) -> None:
        """Read what the server said; a protocol-aware client restarts from the arm's pose when held."""
        for m in self.client.drain():
            if isinstance(m, P.JointState):
                self.mode = P.Mode(m.mode)
                if self.mode is not P.Mode.FOLLOWING:
                    self.q = np.array(m.q_rad)

    def _handshake(self) -> None:
        self.q = np.array(self.client.handshake().q_rad)
        self.mode = P.Mode.HOLD

    def _inside(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lim.q_lo_rad + 1e-3, self.lim.q_hi_rad - 1e-3)

    # ------------------------------------------------------------------ scenarios
    def stream(self) -> None:
        rng = self.rng
        rate = float(rng.choice([50.0, 60.0, 100.0, 250.0, 500.0, 1000.0]))
        speed = float(rng.choice([0.3, 0.8, 1.0, 1.5]))  # of the velocity cap; above 1 runs away: refused
        vel = rng.uniform(-1, 1, 7) * self.lim.dq_max_rad_s * speed
        period = 1.0 / rate
        t0 = time.monotonic()
        for k in range(min(int(rng.integers(5, 40)), max(5, int(0.1 * rate)))):  # at most ~0.1 s
            self.q = self._inside(self.q + vel * period)
            self._target(self.q, dq=vel if rng.random() < 0.2 else None)
            time.sleep(max(0.0, t0 + (k + 1) * period - time.monotonic()))

    def limit_walk(self) -> None:
        """One joint to its limit at the velocity cap (targets stop exactly at it), then silence."""
        j, side = self.walk_plan[self.walks % len(self.walk_plan)]
        self.walks += 1
        if self.mode is not P.Mode.FOLLOWING:
            self._handshake()
        limit = self.lim.q_hi_rad[j] if side > 0 else self.lim.q_lo_rad[j]
        speed = self.lim.dq_max_rad_s[j]
        period = 0.002
        t0 = time.monotonic()
        k = 0
        while abs(self.q[j] - limit) > 0 and k < 5000:
            step = min(speed * period, abs(limit - self.q[j]))
            self.q[j] += math.copysign(step, limit - self.q[j])
            if abs(self.q[j] - limit) < 1e-12:
                self.q[j] = limit
            self._target(self.q)
            k += 1
            time.sleep(max(0.0, t0 + k * period - time.monotonic()))
        for _ in range(5):  # a few more at the limit, then nothing: the watchdog holds
            self._target(self.q)
            time.sleep(period)
        time.sleep(self.lim.config.watchdog_timeout_s + 0.05)
        self._sync()

    def bad_values(self) -> None:
        for _ in range(int(self.rng.integers(2, 10))):
            self._one_bad_value()

    def _one_bad_value(self) -> None:
        rng, lim = self.rng, self.lim
        q = self.q.copy()
        j = int(rng.integers(7))
        q[j] = rng.choice([q[j] + rng.choice([-1, 1]) * rng.uniform(0.1, 3.0), 1e300, -1e300, lim.q_hi_rad[j] + 1e-6,
                           lim.q_lo_rad[j] - 0.01, 5e-324, np.nan, np.inf, 7.0])
        dq = np.full(7, rng.choice([rng.uniform(-3, 3), 11.0, np.nan])) if rng.random() < 0.3 else None
        self._target(q, dq=dq)
        grip = float(rng.choice([-0.01, 0.5, np.nan, 0.04]))
        self._raw(msgpack.packb([P.PROTOCOL_VERSION, int(P.MsgType.TARGET), self.client.next_seq(), self.client.now(),
                                 self.q.tolist(), None, grip]))

    def timing(self) -> None:
        rng, c = self.rng, self.client
        f = int(rng.integers(6))
        if f == 0:
            self._target(self.q, seq=max(c.seq - int(rng.integers(0, 5)), 0))
        elif f == 1:
            self._target(self.q, t_send_ns=c.now() - int(rng.integers(60, 5000)) * 1_000_000)
        elif f == 2:
            self._target(self.q, t_send_ns=c.now() + int(rng.integers(20, 5000)) * 1_000_000)
        elif f == 3:
            c.seq += int(rng.integers(1, 1000))  # a gap: allowed
            self._target(self.q)
        elif f == 4:
            self._target(self.q, t_send_ns=int(rng.choice([0, 1, (1 << 63) - 1])))
        else:  # the largest sequence number: everything after is reordered until a new Hello
            c.seq = (1 << 63) - 2
            self._target(self.q)
            self._raw(msgpack.packb([P.PROTOCOL_VERSION, int(P.MsgType.TARGET), 1 << 63, c.now(), self.q.tolist(),
                                     None, None]))  # past the largest: malformed
            c.seq = int(rng.integers(0, 1000))  # a new session may start its sequence anywhere
            self._handshake()

    def hello(self) -> None:
        rng, c = self.rng, self.client
        rate = float(rng.choice(_EDGE_RATES))
        name = str(rng.choice(_EDGE_NAMES))
        version = int(rng.choice([P.PROTOCOL_VERSION, P.PROTOCOL_VERSION - 1, P.PROTOCOL_VERSION + 1]))
        self._raw(msgpack.packb([version, int(P.MsgType.HELLO), c.next_seq(), c.now(), name, rate]))
        time.sleep(0.002)
        self._handshake()  # whatever that did, a client starts again with a valid session

    def takeover(self) -> None:
        self.intruder.handshake()
        for _ in range(3):
            self._target(self.q)  # not the owner any more
        self._handshake()

    def stop(self) -> None:
        c = self.client
        c.send(P.Stop(c.next_seq(), c.now(), "fuzz"))
        time.sleep(0.005)
        self._target(self.q)  # refused while stopped
        self._handshake()

    def resume(self) -> None:
        far = self.rng.random() < 0.5
        offset = self.rng.uniform(0.06, 0.5) if far else self.rng.uniform(0.0, 0.04)
        time.sleep(self.lim.config.watchdog_timeout_s + 0.02)  # let the watchdog hold
        self._sync()
        self._target(self._inside(self.q + self.rng.choice([-1, 1], 7) * offset))

    def burst(self) -> None:
        step = self.rng.normal(0, 1e-4, 7)
        for _ in range(int(self.rng.integers(100, 300))):
            self.q = self._inside(self.q + step)
            self._target(self.q)

    def garbage(self) -> None:
        for _ in range(int(self.rng.integers(5, 30))):
            self._one_garbage()

    def _one_garbage(self) -> None:
        rng, c = self.rng, self.client
        k = int(rng.integers(5))
        if k == 0:
            self._raw(_mutate(rng, P.encode(P.JointTarget(c.next_seq(), c.now(), tuple(self.q), None, 0.04))))
        elif k == 1:
            head = [int(rng.choice([P.PROTOCOL_VERSION, P.PROTOCOL_VERSION + 1, 0])), int(rng.integers(0, 11)),
                    c.next_seq(), c.now()]
            self._raw(msgpack.packb(head + [_random_obj(rng) for _ in range(int(rng.integers(0, 5)))]))
        elif k == 2:
            self._raw(rng.bytes(int(rng.choice([int(rng.integers(0, 64)), int(rng.integers(1000, 3000))]))))
        elif k == 3:
            self._raw([b"x", P.encode(P.JointTarget(c.next_seq(), c.now(), tuple(self.q)))])
        else:
            self.intruder.target(self.q + rng.normal(0, 0.5, 7))

    def heartbeat_or_recover(self) -> None:
        c = self.client
        if self.rng.random() < 0.5:
            c.send(P.Heartbeat(c.next_seq(), c.now(), int(self.rng.integers(-1, 100)), int(self.rng.integers(-1, 2**40))))
        else:
            c.send(P.Recover(c.next_seq(), c.now()))

    def run(self) -> None:
        scenarios = (self.stream, self.bad_values, self.timing, self.hello, self.takeover, self.stop, self.resume,
                     self.burst, self.garbage, self.heartbeat_or_recover)
        weights = np.array([40, 10, 8, 3, 2, 2, 3, 2, 25, 5], dtype=float)
        t_end = time.monotonic() + self.cfg.time_budget_s
        rounds = 0
        while self.sent < self.cfg.messages and time.monotonic() < t_end and self.server.alive:
            rounds += 1
            if self.cfg.limit_walk_every and rounds % self.cfg.limit_walk_every == 0:
                self.limit_walk()
            else:
                scenarios[int(self.rng.choice(len(scenarios), p=weights / weights.sum()))]()
            self._sync()

    def close(self) -> None:
        self.client.close()
        self.intruder.close()


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif kind == 1:
        b = b[: int(rng.integers(len(b)))]
    elif kind == 2:
        b += rng.bytes(int(rng.integers(1, 20)))
    elif kind == 3:
        i = int(rng.integers(len(b)))
        b[i:i] = rng.bytes(int(rng.integers(1, 8)))
    else:
        b = b * int(rng.integers(10, 30))
    return bytes(b)


def _random_obj(rng: np.random.Generator, depth: int = 0):
    k = rng.integers(8 if depth < 3 else 5)
    if k == 0:
        return int(rng.integers(-2**40, 2**40))
    if k == 1:
        return float(rng.choice([np.nan, np.inf, -np.inf, 1e308, -0.0, 1e-301, rng.normal()]))
    if k == 2:
        return None
    if k == 3:
        return "x" * int(rng.integers(0, 40))
    if k == 4:
        return bool(rng.integers(2))
    if k == 5:
        return {"k": _random_obj(rng, depth + 1)}
    return [_random_obj(rng, depth + 1) for _ in range(int(rng.integers(0, 9)))]


def run_fuzz(server: RobotServer, backend: RecordingBackend, config: FuzzConfig = FuzzConfig()) -> FuzzReport:
    """Fuzz a started server whose backend is ``backend``; then wait for the arm to come to rest and
    measure every command that crossed the backend boundary."""
    t0 = time.monotonic()
    fuzzer = _Fuzzer(server, config)
    try:
        fuzzer.run()
    finally:
        fuzzer.close()
    time.sleep(server.limits.config.watchdog_timeout_s + 0.5)  # the last hold and its braking, recorded
    deaths = 0 if server.alive else 1
    st = server.stats()
    m = motion_ratios(backend.records(), server.limits)
    return FuzzReport(
        messages=fuzzer.sent, ticks=st.n_ticks, commands=m["n"], max_velocity_ratio=m["v"], max_accel_ratio=m["a"],
        max_jerk_ratio=m["j"], max_position_excess_rad=m["pos_over"], limit_violations=m["violations"],
        server_deaths=deaths, gate_refusals=st.n_gate_refusals, position_brakes=st.n_position_brakes,
        accepted=st.n_accepted, rejected=st.n_rejected, limit_walks=fuzzer.walks, sessions=st.session_id,
        seconds=time.monotonic() - t0)
