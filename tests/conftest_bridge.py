"""Helpers for the robot bridge tests: a recording backend, a raw protocol client, limit assertions.

Imported by the ``test_bridge_*`` modules (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import zmq

from robot_bridge import protocol as P
from robot_bridge.backends.base import Backend, BackendCommand, BackendState
from robot_bridge.backends.sim import SimBackend
from robot_bridge.safety import EffectiveLimits, SafetyConfig
from robot_bridge.server import RobotServer, ServerConfig


@dataclass(frozen=True)
class Record:
    t_ns: int  # server issue time
    t_rx_ns: int  # when the backend received it
    q: np.ndarray
    dq: np.ndarray
    target_seq: int
    target_t_send_ns: int


class RecordingBackend(Backend):
    """Wraps a real backend and records every command that crosses the backend boundary."""

    def __init__(self, inner: Backend | None = None, max_records: int = 500_000) -> None:
        self.inner = inner or SimBackend()
        self.name = f"recording({self.inner.name})"
        self.rate_hz = self.inner.rate_hz
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._max = max_records
        self.n_idle = 0
        self.error_flags = 0  # injected into read_state

    def connect(self, timeout_s: float) -> None:
        self.inner.connect(timeout_s)

    def disconnect(self) -> None:
        self.inner.disconnect()

    def read_state(self) -> BackendState:
        st = self.inner.read_state()
        return replace(st, error_flags=st.error_flags | self.error_flags) if self.error_flags else st

    def command(self, cmd: BackendCommand) -> None:
        t_rx = time.monotonic_ns()
        with self._lock:
            if len(self._records) < self._max:
                self._records.append(Record(cmd.t_ns, t_rx, cmd.q_rad.copy(), cmd.dq_rad_s.copy(),
                                            cmd.target_seq, cmd.target_t_send_ns))
        self.inner.command(cmd)

    def idle(self, t_ns: int) -> None:
        self.n_idle += 1
        self.inner.idle(t_ns)

    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@contextlib.contextmanager
def running_server(backend: Backend | None = None, safety: SafetyConfig | None = None, **kwargs):
    """A started `RobotServer` on a free loopback port with a `RecordingBackend`."""
    backend = backend or RecordingBackend()
    cfg = ServerConfig(bind_address="tcp://127.0.0.1:0", safety=safety or SafetyConfig(), **kwargs)
    server = RobotServer(backend, cfg).start(timeout_s=5.0)
    try:
        yield server
        server.check()
    finally:
        server.stop()


class RawClient:
    """Speaks the protocol by hand over a DEALER socket, so tests can send anything at all."""

    def __init__(self, endpoint: str, clock_skew_ns: int = 0, ctx: zmq.Context | None = None) -> None:
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.setsockopt(zmq.SNDTIMEO, 200)  # never hang a test on a peer that is not there
        self.sock.connect(endpoint)
        self.skew = clock_skew_ns  # pretend this client's clock runs this far ahead [ns]
        self.seq = 0
        self.welcome: P.Welcome | None = None

    def now(self) -> int:
        return time.monotonic_ns() + self.skew

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(self, msg, version: int = P.PROTOCOL_VERSION) -> None:
        self.sock.send(P.encode(msg, version=version))

    def send_raw(self, data: bytes | list[bytes]) -> None:
        if isinstance(data, list):
            self.sock.send_multipart(data)
        else:
            self.sock.send(data)

    def recv(self, timeout_s: float = 1.0):
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        return P.decode(self.sock.recv())

    def recv_until(self, cls, timeout_s: float = 1.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = self.recv(max(deadline - time.monotonic(), 0.001))
            if isinstance(m, cls):
                return m
        return None

    def handshake(self, timeout_s: float = 2.0) -> P.Welcome:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hello_seq = self.next_seq()
            try:
                self.send(P.Hello(hello_seq, self.now(), "raw", 1000.0))
            except zmq.Again:
                continue
            w = self.recv_until(P.Welcome, 0.2)
            if w is not None and w.echo_seq == hello_seq:
                t4 = self.now()
                hb_seq = self.next_seq()
                self.send(P.Heartbeat(hb_seq, self.now(), w.seq, t4))
                r = self.recv_until(P.HeartbeatReply, 1.0)
                assert r is not None and r.echo_seq == hb_seq
                self.welcome = w
                return w
        raise TimeoutError("no handshake")

    def target(self, q, dq=None, seq: int | None = None, t_send_ns: int | None = None) -> int:
        seq = self.next_seq() if seq is None else seq
        self.send(P.JointTarget(seq, self.now() if t_send_ns is None else t_send_ns, tuple(np.asarray(q, float)),
                                None if dq is None else tuple(np.asarray(dq, float))))
        return seq

    def drain(self) -> list:
        out = []
        while self.sock.poll(0):
            try:
                out.append(P.decode(self.sock.recv()))
            except P.ProtocolError:
                pass
        return out

    def close(self) -> None:
        self.sock.close(0)
        if self._own_ctx:
            self.ctx.term()


def stream(client: RawClient, q_of_t, duration_s: float, rate_hz: float = 500.0) -> int:
    """Send ``q_of_t(t)`` at ``rate_hz`` for ``duration_s``; returns the last seq sent."""
    t0 = time.monotonic()
    period = 1.0 / rate_hz
    k = 0
    seq = -1
    while True:
        t = time.monotonic() - t0
        if t >= duration_s:
            return seq
        seq = client.target(q_of_t(t))
        k += 1
        sleep = t0 + k * period - time.monotonic()
        if sleep > 0:
            time.sleep(sleep)


def wait_until(predicate, timeout_s: float, poll_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def assert_commands_within_limits(records: list[Record], lim: EffectiveLimits, tol: float = 1e-9) -> None:
    """Every command inside the position limits and velocity cap, and consecutive commands consistent
    with the velocity and acceleration caps over the time between them."""
    assert records, "no command reached the backend"
    q = np.stack([r.q for r in records])
    dq = np.stack([r.dq for r in records])
    t = np.array([r.t_ns for r in records], dtype=np.int64)
    assert np.all(np.isfinite(q)) and np.all(np.isfinite(dq))
    assert np.all(q >= lim.q_lo_rad - tol), "command below a position limit"
    assert np.all(q <= lim.q_hi_rad + tol), "command above a position limit"
    assert np.all(np.abs(dq) <= lim.dq_max_rad_s + tol), "command velocity above its cap"
    if len(records) > 1:
        dt = np.minimum(np.diff(t) * 1e-9, lim.config.max_tick_dt_s)[:, None]
        assert np.all(np.diff(t) > 0)
        step = np.abs(np.diff(q, axis=0))
        assert np.all(step <= lim.dq_max_rad_s * dt + tol), f"position step too large: {np.max(step / (lim.dq_max_rad_s * dt))}"
        dv = np.abs(np.diff(dq, axis=0))
        assert np.all(dv <= lim.ddq_max_rad_s2 * dt + 1e-6), f"acceleration too large: {np.max(dv / (lim.ddq_max_rad_s2 * dt))}"
