"""The twin-side client: streams joint targets, receives joint states, tracks clock, latency and loss.

Usage::

    from robot_bridge import BridgeClient, ClientConfig

    with BridgeClient(ClientConfig(server_address="tcp://127.0.0.1:5557", rate_hz=60)) as client:
        welcome = client.connect(timeout_s=2.0)      # handshake + clock sync; raises on timeout
        q = np.asarray(welcome.q_rad)                # the held pose: start the stream from here
        while running:
            client.send_target(q)                    # never blocks; latest wins
            state = client.poll(timeout_s=0.0)       # newest JointState (or None)
            if not client.following: ...             # robot holds / stopped / in error / silent

The client owns one ZMQ DEALER socket and no thread: every call services the socket (receives states
and heartbeat replies, sends a heartbeat when due, and starts a new handshake when the server has been
silent for ``reconnect_after_s``). Calls are serialised by a lock, so several threads may share one.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq

from . import protocol as P
from ._errors import BridgeTimeoutError, HandshakeError
from .clock import ClockSync
from .protocol import Mode

__all__ = ["ClientConfig", "ClientStats", "BridgeClient"]


@dataclass(frozen=True)
class ClientConfig:
    """Settings of `BridgeClient`."""

    server_address: str = "tcp://127.0.0.1:5557"
    name: str = "twin"
    rate_hz: float = 60.0  # nominal target rate [Hz]; the server spreads each target over 1/rate_hz
    connect_timeout_s: float = 2.0
    heartbeat_period_s: float = 0.05  # [s]
    reconnect_after_s: float = 0.5  # a server silent this long gets a new handshake [s]
    following_timeout_s: float = 0.1  # `following` needs a state newer than this [s]
    send_hwm: int = 4  # at most this many messages wait in the socket; more are dropped [messages]
    curve_server_public_key_file: str = ""  # zmq.auth ``.key`` of the server; "" = no CURVE
    curve_client_secret_key_file: str = ""  # zmq.auth ``.key_secret`` of this client
    latency_window: int = 4096  # latency samples kept for the statistics [samples]


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of the client's counters. Latencies are one-way, client send -> server accept,
    corrected by the clock offset estimate."""

    connected: bool
    session_id: int
    n_sent: int
    n_dropped: int  # targets not sent (no session, or the socket was full)
    n_states: int
    n_reconnects: int
    server_accepted: int
    server_rejected: int
    loss: float  # 1 - accepted / sent in this session
    latency_p50_us: float
    latency_p99_us: float
    latency_max_us: float
    rtt_us: float  # best round trip of the clock filter
    clock_offset_ns: int  # server clock - client clock [ns]


class BridgeClient:
    """Streams targets to a `RobotServer`. See the module docstring."""

    def __init__(self, config: ClientConfig = ClientConfig()) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = None
        self._seq = 0
        self.clock = ClockSync()
        self._welcome: P.Welcome | None = None
        self._hello_seq = -1
        self._hello_t_ns = 0
        self._synced_after_welcome = False
        self._last_reply: tuple[int, int] = (-1, -1)  # (seq, t_recv_ns) of the last Welcome/HeartbeatReply
        self._last_hb_ns = 0
        self._last_rx_ns = 0
        self._last_state_seq = -1
        self._state: P.JointState | None = None
        self._state_rx_ns = 0
        self._error: P.ErrorReply | None = None
        self._sent: collections.OrderedDict[int, int] = collections.OrderedDict()  # target seq -> t_send_ns
        self._latency_ns: collections.deque = collections.deque(maxlen=config.latency_window)
        self._n_sent = self._n_sent_session = self._n_dropped = self._n_states = self._n_reconnects = 0
        self._closed = False
        self.last_sent: tuple[int, int] = (-1, -1)  # (seq, t_send_ns) of the newest target sent

    # ------------------------------------------------------------------ socket

    def _new_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, self.config.send_hwm)
        s.setsockopt(zmq.RCVHWM, 1000)
        s.setsockopt(zmq.IMMEDIATE, 1)  # never queue messages for a connection that is not up
        s.setsockopt(zmq.MAXMSGSIZE, 65536)
        if self.config.curve_server_public_key_file:
            from zmq.auth import load_certificate

            server_public, _ = load_certificate(self.config.curve_server_public_key_file)
            public, secret = load_certificate(self.config.curve_client_secret_key_file)
            if secret is None:
                raise HandshakeError(f"{self.config.curve_client_secret_key_file} holds no secret key")
            s.curve_serverkey = server_public
            s.curve_publickey = public
            s.curve_secretkey = secret
        s.connect(self.config.server_address)
        self._sock = s

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _send(self, msg) -> bool:
        try:
            self._sock.send(P.encode(msg), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _start_handshake(self) -> None:
        self._new_socket()
        self._welcome = None
        self._synced_after_welcome = False
        self._error = None
        self.clock.reset()
        self._last_reply = (-1, -1)
        self._sent.clear()
        self._n_sent_session = 0
        self._last_state_seq = -1
        self._state = None
        self._send_hello()

    def _send_hello(self) -> None:
        self._hello_seq = self._next_seq()
        self._hello_t_ns = time.monotonic_ns()
        self._send(P.Hello(self._hello_seq, self._hello_t_ns, self.config.name, float(self.config.rate_hz)))

    # ------------------------------------------------------------------ public API

    def connect(self, timeout_s: float | None = None) -> P.Welcome:
        """Handshake and synchronise clocks. Returns the server's `Welcome` (with the held pose).

        Raises:
            BridgeTimeoutError: no answer within ``timeout_s`` (default ``connect_timeout_s``).
            HandshakeError: the server refused (for example a protocol version mismatch).
        """
        timeout_s = self.config.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._start_handshake()
            while True:
                remaining = deadline - time.monotonic()
                if self._error is not None:
                    raise HandshakeError(f"server refused the handshake: {self._error.code}: {self._error.text}")
                if self._welcome is not None and self._synced_after_welcome:
                    return self._welcome
                if remaining <= 0:
                    raise BridgeTimeoutError(f"no handshake with {self.config.server_address} within {timeout_s} s")
                if self._welcome is None and time.monotonic_ns() - self._hello_t_ns > 50_000_000:
                    self._send_hello()  # the first one may have been sent before the connection was up
                self._service(wait_s=min(remaining, 0.01), reconnect=False)

    @property
    def connected(self) -> bool:
        return self._welcome is not None and self._synced_after_welcome

    def send_target(self, q_rad, dq_rad_s=None, gripper_width_m: float | None = None) -> int:
        """Send one joint target [rad] (optional velocities [rad/s], gripper width [m]). Never blocks.

        Returns the target's sequence number, or -1 when it was dropped (no session or socket full).
        """
        with self._lock:
            self._service(wait_s=0.0)
            if not self.connected:
                self._n_dropped += 1
                return -1
            seq = self._next_seq()
            t = time.monotonic_ns()
            msg = P.JointTarget(seq, t, tuple(np.asarray(q_rad, float).tolist()),
                                None if dq_rad_s is None else tuple(np.asarray(dq_rad_s, float).tolist()),
                                None if gripper_width_m is None else float(gripper_width_m))
            if not self._send(msg):
                self._n_dropped += 1
                return -1
            self._n_sent += 1
            self._n_sent_session += 1
            self._sent[seq] = t
            self.last_sent = (seq, t)
            while len(self._sent) > 2048:
                self._sent.popitem(last=False)
            return seq

    def stop(self, reason: str = "client stop") -> None:
        """Ask the server to stop following and hold (it needs a new `connect` to move again)."""
        with self._lock:
            if self._sock is not None and self._welcome is not None:
                self._send(P.Stop(self._next_seq(), time.monotonic_ns(), reason))

    def request_recovery(self, timeout_s: float = 10.0) -> P.JointState:
        """The operator's error recovery (`robot_bridge.protocol.Recover`): connects if needed, asks the
        server to run the robot's own recovery, and returns the first state out of ERROR. The twin
        never calls this; ``realsim robot-server --recover`` does, on a person's decision.

        Raises:
            BridgeTimeoutError: no connection, or the robot still in ERROR after ``timeout_s``.
        """
        if not self.connected:
            self.connect(timeout_s)
        st = self.wait_for_state(lambda st: True, timeout_s)
        if st.mode != Mode.ERROR:
            return st
        with self._lock:
            self._send(P.Recover(self._next_seq(), time.monotonic_ns()))
        return self.wait_for_state(lambda st: st.mode != Mode.ERROR, timeout_s)

    def poll(self, timeout_s: float = 0.0) -> P.JointState | None:
        """Service the socket, waiting up to ``timeout_s`` for a message; returns the newest state."""
        with self._lock:
            self._service(wait_s=timeout_s)
            return self._state

    def wait_for_state(self, predicate, timeout_s: float) -> P.JointState:
        """Poll until ``predicate(state)`` holds. Raises `BridgeTimeoutError` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.poll(timeout_s=0.01)
            if st is not None and predicate(st):
                return st
            if time.monotonic() > deadline:
                raise BridgeTimeoutError(f"state condition not met within {timeout_s} s")

    @property
    def state(self) -> P.JointState | None:
        return self._state

    @property
    def following(self) -> bool:
        """True when a recent state says the server is FOLLOWING without error flags."""
        st = self._state
        if st is None or not self.connected:
            return False
        fresh = (time.monotonic_ns() - self._state_rx_ns) * 1e-9 < self.config.following_timeout_s
        return fresh and st.mode == Mode.FOLLOWING and st.error_flags == 0

    def stats(self) -> ClientStats:
        with self._lock:
            lat = np.asarray(self._latency_ns, dtype=float) * 1e-3
            p50, p99, mx = (np.percentile(lat, 50), np.percentile(lat, 99), lat.max()) if lat.size else (np.nan,) * 3
            st = self._state
            acc = st.n_accepted if st is not None else 0
            best = self.clock.best()
            return ClientStats(
                connected=self.connected, session_id=self._welcome.session_id if self._welcome else 0,
                n_sent=self._n_sent, n_dropped=self._n_dropped, n_states=self._n_states,
                n_reconnects=self._n_reconnects, server_accepted=acc,
                server_rejected=st.n_rejected if st is not None else 0,
                loss=(1.0 - acc / self._n_sent_session) if self._n_sent_session else 0.0,
                latency_p50_us=float(p50), latency_p99_us=float(p99), latency_max_us=float(mx),
                rtt_us=float(best.delay_ns * 1e-3) if best else float("nan"), clock_offset_ns=self.clock.offset_ns)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._sock is not None:
                self._sock.close(0)
                self._sock = None
            self._ctx.term()

    def __enter__(self) -> "BridgeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _service(self, wait_s: float, reconnect: bool = True) -> None:
        if self._sock is None:
            return
        now = time.monotonic_ns()
        if reconnect:
            silent_s = (now - max(self._last_rx_ns, self._hello_t_ns)) * 1e-9
            if silent_s > self.config.reconnect_after_s:
                self._n_reconnects += 1
                self._start_handshake()
            elif self._welcome is None and (now - self._hello_t_ns) > 50_000_000:
                self._send_hello()
        if wait_s > 0 and not self._sock.poll(timeout=max(1, int(wait_s * 1000)), flags=zmq.POLLIN):
            pass
        while True:
            try:
                data = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            t4 = time.monotonic_ns()
            try:
                msg = P.decode(data)
            except P.ProtocolError:
                continue
            self._last_rx_ns = t4
            self._on_message(msg, t4)
        now = time.monotonic_ns()
        if self._welcome is not None and (now - self._last_hb_ns) * 1e-9 >= self.config.heartbeat_period_s:
            self._send_heartbeat(now)

    def _send_heartbeat(self, now: int) -> None:
        self._last_hb_ns = now
        self._send(P.Heartbeat(self._next_seq(), now, self._last_reply[0], self._last_reply[1]))

    def _on_message(self, msg, t4: int) -> None:
        if isinstance(msg, P.JointState):
            if msg.seq <= self._last_state_seq:
                return
            self._last_state_seq = msg.seq
            self._state = msg
            self._state_rx_ns = t4
            self._n_states += 1
            t_send = self._sent.pop(msg.last_target_seq, None)
            if t_send is not None and msg.last_target_recv_ns >= 0 and self.clock.synced:
                self._latency_ns.append(msg.last_target_recv_ns - self.clock.offset_ns - t_send)
        elif isinstance(msg, P.HeartbeatReply):
            self.clock.add(msg.echo_t_send_ns, msg.t_recv_ns, msg.t_send_ns, t4)
            self._last_reply = (msg.seq, t4)
            if self._welcome is not None and msg.echo_seq > self._hello_seq:
                self._synced_after_welcome = True
        elif isinstance(msg, P.Welcome):
            if msg.echo_seq != self._hello_seq:
                return  # answer to an older handshake
            self.clock.add(msg.echo_t_send_ns, msg.t_recv_ns, msg.t_send_ns, t4)
            self._welcome = msg
            self._last_reply = (msg.seq, t4)
            self._send_heartbeat(time.monotonic_ns())  # gives the server its first clock sample
        elif isinstance(msg, P.ErrorReply):
            self._error = msg
