"""The robot-side server: receives targets over ZMQ, applies the safety layer, commands a backend.

One thread owns the socket, the safety state and the backend. Each loop it drains every pending
message (so only the newest valid target is ever commanded: latest wins, nothing is queued), then
runs a control tick when one is due (at the backend rate) or at once when a new target was accepted,
so the backend sees a target without waiting for the next tick.

Session rules: a `Hello` opens a session for that peer (taking over from any previous one) and the
server enters HOLD at the current pose; a target within ``resume_tolerance_rad`` of the held pose
starts FOLLOWING; silence longer than ``watchdog_timeout_s`` returns to HOLD; `Stop` enters STOPPED
until the next Hello; a backend error flag enters ERROR (nothing commanded) until it clears; `Recover`
(from the operator, in ERROR) runs the backend's error recovery.

Every command comes from the motion limiter (`robot_bridge.motion`): following tracks the reference,
HOLD and STOPPED brake to rest, and `stop` (or an exception in the loop) brakes the arm to rest at the
acceleration and jerk caps before the backend is released. An exception in the loop ends the server
(`check` raises, ``realsim robot-server`` exits non-zero) after that stop: never a dead thread behind
a live process.

Transport security: binds to loopback by default. A non-loopback bind is refused unless CURVE keys are
configured; with CURVE, only clients whose public key is in ``curve_authorized_keys_dir`` are heard.
"""

from __future__ import annotations

import collections
import logging
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from . import protocol as P
from ._errors import BindRefusedError, BridgeTimeoutError, ServerFailedError
from ._control import _FollowerControl
from ._sessions import _Session, _SessionHandling
from .backends.base import Backend, BackendState
from .endpoints import is_loopback_endpoint
from .limits import FRANKA_PANDA_LIMITS, JointLimits, SafetyConfig, effective_limits
from .motion import at_rest
from .protocol import Mode, Reject

__all__ = ["ServerConfig", "ServerStats", "RejectionRecord", "RobotServer"]

log = logging.getLogger("robot_bridge.server")


@dataclass(frozen=True)
class ServerConfig:
    """Settings of `RobotServer` (the YAML config of ``realsim robot-server``)."""

    bind_address: str = "tcp://127.0.0.1:5557"  # ZMQ endpoint; port 0 picks a free port
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    state_rate_hz: float = 250.0  # joint states sent to the client [Hz]
    max_message_bytes: int = P.MAX_MESSAGE_BYTES  # protocol limit, counted as OVERSIZED [bytes]
    transport_max_bytes: int = 65536  # ZMQ MAXMSGSIZE: a peer sending more is disconnected [bytes]
    curve_secret_key_file: str = ""  # server key pair (zmq.auth ``.key_secret`` file); "" = no CURVE
    curve_authorized_keys_dir: str = ""  # folder of ``.key`` files of clients allowed to connect
    rejection_log_per_s: float = 5.0  # log lines per second per reason (counts stay exact)
    max_drain_per_loop: int = 512  # messages read before the next tick at the latest
    backend_connect_timeout_s: float = 10.0
    recv_hwm: int = 1000  # bounded receive queue [messages]


@dataclass(frozen=True)
class RejectionRecord:
    t_ns: int
    reason: Reject
    detail: str


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the server's counters."""

    mode: Mode
    session_id: int
    n_received: int
    n_accepted: int
    n_superseded: int  # accepted targets replaced by a newer one before any tick used them
    n_rejected: int
    rejections: dict  # Reject -> count
    n_ticks: int
    n_commands: int
    n_watchdog_holds: int
    n_gate_refusals: int  # commands refused by the final gate (should stay 0)
    n_position_brakes: int  # ticks on which a position limit made the tracker brake early
    n_recoveries: int  # error recoveries the operator asked for and the backend completed
    clock_offset_ns: int
    clock_synced: bool


class RobotServer(_SessionHandling, _FollowerControl):
    """Serve one robot backend behind the safety layer.

    Args:
        backend: the robot (not yet connected; `start` connects it).
        config: server settings.
        limits: hardware limits; the safety layer scales and shrinks them per ``config.safety``.

    Raises:
        BindRefusedError: non-loopback ``bind_address`` without CURVE keys.
    """

    def __init__(self, backend: Backend, config: ServerConfig = ServerConfig(),
                 limits: JointLimits = FRANKA_PANDA_LIMITS) -> None:
        self.backend = backend
        self.config = config
        self.limits = effective_limits(limits, config.safety)
        backend.limits = self.limits
        self._curve = bool(config.curve_secret_key_file)
        if bool(config.curve_secret_key_file) != bool(config.curve_authorized_keys_dir):
            raise BindRefusedError("CURVE needs both curve_secret_key_file and curve_authorized_keys_dir")
        if not is_loopback_endpoint(config.bind_address) and not self._curve:
            raise BindRefusedError(
                f"refusing to bind {config.bind_address!r}: non-loopback binds need CURVE keys "
                "(curve_secret_key_file and curve_authorized_keys_dir)")
        self._period_ns = int(round(1e9 / backend.rate_hz))
        self._state_period_ns = int(round(1e9 / config.state_rate_hz)) if config.state_rate_hz > 0 else None
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._auth = None
        self.endpoint: str | None = None
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle

    def _reset_state(self) -> None:
        self._mode = Mode.IDLE
        self._session: _Session | None = None
        self._next_session_id = 1
        self._out_seq = 0
        self._motion = at_rest(np.zeros(7))  # the last command (or the measured pose at rest)
        self._q_hold = np.zeros(7)
        self._interp_from = np.zeros(7)
        self._target_q: np.ndarray | None = None
        self._target_dq: np.ndarray | None = None
        self._target_seq = -1
        self._target_t_send_ns = -1  # converted to the server clock
        self._target_arrival_ns = -1
        # the reference path of the current target: from _interp_from at _seg_t0_ns to the target at _seg_t1_ns
        self._seg_t0_ns = 0
        self._seg_t1_ns = 0
        self._latencies: collections.deque = collections.deque(maxlen=64)  # arrival - send of recent targets [ns]
        self._target_delivered = True
        self._last_valid_ns = 0
        self._last_tick_ns = 0
        self._last_pub_ns = 0
        self._last_state: BackendState | None = None
        self._n_received = 0
        self._n_accepted = 0
        self._n_superseded = 0
        self._n_rejected = 0
        self._rejections: collections.Counter = collections.Counter()
        self._recent: collections.deque = collections.deque(maxlen=256)
        self._log_last: dict = {}
        self._log_suppressed: collections.Counter = collections.Counter()
        self._n_ticks = 0
        self._n_commands = 0
        self._n_watchdog = 0
        self._n_gate = 0
        self._n_position_brakes = 0
        self._n_recoveries = 0

    def start(self, timeout_s: float = 10.0) -> "RobotServer":
        """Connect the backend, bind, and start the control thread. Returns self."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self.backend.connect(timeout_s=min(timeout_s, self.config.backend_connect_timeout_s))
        try:
            self._open_socket()
        except BaseException:
            self.backend.disconnect()
            raise
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="robot-bridge-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            self.stop()
            raise BridgeTimeoutError(f"server thread did not start within {timeout_s} s")
        self.check()
        return self

    def _open_socket(self) -> None:
        cfg = self.config
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, cfg.recv_hwm)
        sock.setsockopt(zmq.SNDHWM, 100)
        sock.setsockopt(zmq.MAXMSGSIZE, cfg.transport_max_bytes)
        if self._curve:
            from zmq.auth import load_certificate
            from zmq.auth.thread import ThreadAuthenticator

            keys_dir = Path(cfg.curve_authorized_keys_dir)
            if not keys_dir.is_dir():
                raise BindRefusedError(f"curve_authorized_keys_dir {keys_dir} is not a folder")
            public, secret = load_certificate(cfg.curve_secret_key_file)
            if secret is None:
                raise BindRefusedError(f"{cfg.curve_secret_key_file} holds no secret key")
            self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("robot_bridge.server.auth"))
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(keys_dir))
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_server = True
        try:
            sock.bind(cfg.bind_address)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._close_ctx()
            raise BindRefusedError(f"cannot bind {cfg.bind_address}: {exc}") from exc
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock

    def _close_ctx(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def stop(self, timeout_s: float = 2.0) -> None:
        """Bring the arm to rest at the acceleration and jerk caps, stop the control thread, close the
        socket and disconnect the backend. Idempotent."""
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("server thread did not stop within %.1f s", timeout_s)
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        self._close_ctx()
        try:
            self.backend.disconnect()
        finally:
            self._thread = None

    def __enter__(self) -> "RobotServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def check(self) -> None:
        """Raise `ServerFailedError` if the control thread died."""
        if self._error is not None:
            raise ServerFailedError("robot bridge server thread failed") from self._error

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._error is None

    # ------------------------------------------------------------------ introspection

    @property
    def mode(self) -> Mode:
        return self._mode

    def stats(self) -> ServerStats:
        with self._lock:
            s = self._session
            return ServerStats(
                mode=self._mode, session_id=0 if s is None else s.session_id, n_received=self._n_received,
                n_accepted=self._n_accepted, n_superseded=self._n_superseded, n_rejected=self._n_rejected,
                rejections=dict(self._rejections), n_ticks=self._n_ticks, n_commands=self._n_commands,
                n_watchdog_holds=self._n_watchdog, n_gate_refusals=self._n_gate,
                n_position_brakes=self._n_position_brakes, n_recoveries=self._n_recoveries,
                clock_offset_ns=0 if s is None else s.clock.offset_ns,
                clock_synced=False if s is None else s.clock.synced)

    def recent_rejections(self) -> tuple[RejectionRecord, ...]:
        """The last (at most 256) rejections, oldest first."""
        with self._lock:
            return tuple(self._recent)

    # ------------------------------------------------------------------ control thread

    def _run(self, ready: threading.Event) -> None:
        try:
            now = time.monotonic_ns()
            self._last_tick_ns = now
            self._last_state = self.backend.read_state()
            ready.set()
            self._loop()
            self._brake_to_rest("server stopping")
        except BaseException as exc:  # handed to the owner through check()/alive, after a safe stop
            log.exception("robot bridge server thread failed: bringing the arm to rest")
            try:
                self._brake_to_rest("server failure")
            except BaseException:
                log.exception("could not bring the arm to rest after the failure")
            self._error = exc
        finally:
            ready.set()

    def _loop(self) -> None:
        """Wait for a message or the next tick; drain; tick when due, or at once for a new target
        (but never two ticks closer than a tenth of the backend period)."""
        sock = self._sock
        fd = sock.getsockopt(zmq.FD)
        period = self._period_ns
        min_gap = period // 10
        next_tick = time.monotonic_ns() + period
        pending = False  # an accepted target not yet ticked
        while not self._stop_evt.is_set():
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                deadline = min(next_tick, self._last_tick_ns + min_gap) if pending else next_tick
                wait_ns = deadline - time.monotonic_ns()
                if wait_ns > 0:
                    select.select([fd], [], [], min(wait_ns * 1e-9, 0.05))
            pending |= self._drain(sock)
            now = time.monotonic_ns()
            if pending and now - self._last_tick_ns >= min_gap:
                self._tick(now)
                pending = False
                # the next periodic tick comes a little after the next target of a client streaming at
                # the backend rate would: its target then finds no tick just before it to wait behind
                next_tick = now + period + min_gap
            elif now >= next_tick:
                self._tick(now)
                pending = False
                next_tick += period
                if next_tick <= now:  # fell behind (stall): re-phase rather than burst
                    next_tick = now + period

    def _drain(self, sock: zmq.Socket) -> bool:
        got_target = False
        for _ in range(self.config.max_drain_per_loop):
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # cheaper than catching zmq.Again
                break
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            t_recv = time.monotonic_ns()
            self._n_received += 1
            if len(frames) != 2:
                self._reject(Reject.MULTIPART, f"{len(frames) - 1} payload frames", t_recv)
                continue
            ident, payload = frames
            try:
                msg = P.decode(payload, self.config.max_message_bytes)
            except P.ProtocolError as exc:
                self._reject(exc.reason, exc.detail, t_recv)
                if exc.reason is Reject.WRONG_VERSION:
                    self._send(ident, P.ErrorReply(self._next_seq(), time.monotonic_ns(), exc.reason.value,
                                                   f"server speaks protocol version {P.PROTOCOL_VERSION}"))
                continue
            got_target |= self._handle(ident, msg, t_recv)
        return got_target

    def _next_seq(self) -> int:
        self._out_seq += 1
        return self._out_seq

    def _send(self, ident: bytes, msg) -> None:
        try:
            self._sock.send_multipart([ident, P.encode(msg)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the peer is not reading: states are latest-wins too, dropping is correct

    def _reject(self, reason: Reject, detail: str, t_ns: int) -> None:
        with self._lock:
            self._n_rejected += 1
            self._rejections[reason] += 1
            self._recent.append(RejectionRecord(t_ns, reason, detail))
        last = self._log_last.get(reason, 0)
        if t_ns - last >= 1e9 / max(self.config.rejection_log_per_s, 1e-3):
            n = self._log_suppressed.pop(reason, 0)
            log.warning("rejected message: %s (%s)%s", reason.value, detail,
                        f" [+{n} more since last report]" if n else "")
            self._log_last[reason] = t_ns
        else:
            self._log_suppressed[reason] += 1

    def _set_mode(self, mode: Mode, why: str) -> None:
        if mode is not self._mode:
            log.info("mode %s -> %s (%s)", self._mode.name, mode.name, why)
            self._mode = mode

    def _publish(self, now: int, st: BackendState, extra_flags: int = 0) -> None:
        s = self._session
        if s is None or self._state_period_ns is None or now - self._last_pub_ns < self._state_period_ns:
            return
        self._last_pub_ns = now
        msg = P.JointState(
            self._next_seq(), time.monotonic_ns(), st.t_ns, tuple(st.q_rad.tolist()), tuple(st.dq_rad_s.tolist()),
            None if st.tau_nm is None else tuple(np.asarray(st.tau_nm).tolist()), int(self._mode),
            self._flags(st) | int(extra_flags), self._target_seq, self._target_arrival_ns, self._n_accepted,
            self._n_rejected)
        self._send(s.identity, msg)

