"""A raw protocol client that can send anything at all, a server on a free loopback port, and helpers."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import zmq

from .. import protocol as P
from ..backends.base import Backend
from ..limits import SafetyConfig
from ..server import RobotServer, ServerConfig
from ._recording import RecordingBackend

__all__ = ["running_server", "RawClient", "stream", "wait_until"]


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
        self.n_sent = 0  # messages sent (all kinds)
        self.welcome: P.Welcome | None = None

    def now(self) -> int:
        return time.monotonic_ns() + self.skew

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(self, msg, version: int = P.PROTOCOL_VERSION) -> None:
        self.sock.send(P.encode(msg, version=version))
        self.n_sent += 1

    def send_raw(self, data: bytes | list[bytes]) -> None:
        if isinstance(data, list):
            self.sock.send_multipart(data)
        else:
            self.sock.send(data)
        self.n_sent += 1

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

    def handshake(self, timeout_s: float = 5.0) -> P.Welcome:
        self.drain()  # what the server sent before is of no use to a new session
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hello_seq = self.next_seq()
            try:
                self.send(P.Hello(hello_seq, self.now(), "raw", 1000.0))
            except zmq.Again:
                continue
            retry = time.monotonic() + 0.2
            w = self.recv_until(P.Welcome, 0.2)
            while w is not None and w.echo_seq != hello_seq:  # answers to earlier Hellos: read on
                w = self.recv_until(P.Welcome, max(retry - time.monotonic(), 0.001))
            if w is not None:
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


