"""The robot server's session half: what each client message does (a Hello opens a session and holds,
heartbeats sync the clocks, Stop stops, Recover asks the backend's recovery, targets go to the control
half). Mixed into `RobotServer`, whose state it reads and writes; sockets live in ``server.py``."""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

from . import protocol as P
from ._errors import BackendError
from .clock import ClockSync
from .motion import at_rest, stopping_pose
from .protocol import ErrorFlag, Mode, Reject
from .safety import check_sequence

log = logging.getLogger("robot_bridge.server")


@dataclass
class _Session:
    identity: bytes
    session_id: int
    rate_hz: float
    last_seq: int
    clock: ClockSync = field(default_factory=ClockSync)
    replies: collections.OrderedDict = field(default_factory=collections.OrderedDict)  # seq -> (t1, t2, t3)

    def remember_reply(self, seq: int, t1: int, t2: int, t3: int) -> None:
        self.replies[seq] = (t1, t2, t3)
        while len(self.replies) > 16:
            self.replies.popitem(last=False)


class _SessionHandling:
    """Methods of `RobotServer` that handle client messages (mixed in; the attributes are the server's)."""

    def _handle(self, ident: bytes, msg, t_recv: int) -> bool:
        if isinstance(msg, P.Hello):
            self._open_session(ident, msg, t_recv)
            return False
        s = self._session
        if s is None:
            self._reject(Reject.NO_SESSION, type(msg).__name__, t_recv)
            return False
        if ident != s.identity:
            self._reject(Reject.NOT_OWNER, type(msg).__name__, t_recv)
            return False
        if not isinstance(msg, (P.JointTarget, P.Heartbeat, P.Stop, P.Recover)):
            self._reject(Reject.UNEXPECTED_TYPE, type(msg).__name__, t_recv)
            return False
        if isinstance(msg, P.JointTarget):
            return self._on_target(s, msg, t_recv)
        v = check_sequence(msg.seq, s.last_seq)
        if v:
            self._reject(v[0].reason, v[0].detail, t_recv)
            return False
        s.last_seq = msg.seq
        if isinstance(msg, P.Heartbeat):
            echo = s.replies.get(msg.echo_seq)
            if echo is not None and msg.echo_t_recv_ns >= 0:
                s.clock.add(echo[0], echo[1], echo[2], msg.echo_t_recv_ns)
            t3 = time.monotonic_ns()
            seq = self._next_seq()
            self._send(ident, P.HeartbeatReply(seq, t3, msg.seq, msg.t_send_ns, t_recv))
            s.remember_reply(seq, msg.t_send_ns, t_recv, t3)
        elif isinstance(msg, P.Recover):
            self._recover(t_recv)
        else:  # Stop
            if self._mode in (Mode.FOLLOWING, Mode.HOLD):
                self._q_hold = stopping_pose(self._motion, self.limits)
                self._set_mode(Mode.STOPPED, f"stop requested: {msg.reason!r}")
        return False

    def _recover(self, t_recv: int) -> None:
        """The operator's `Recover`: the backend's own error recovery, only while in ERROR (the
        server then holds the measured pose once the flags clear, as after any error)."""
        if self._mode is not Mode.ERROR:
            self._reject(Reject.UNEXPECTED_TYPE, f"recover in mode {self._mode.name}: only in ERROR", t_recv)
            return
        log.warning("operator asked for error recovery")
        try:
            self.backend.recover(timeout_s=self.config.backend_connect_timeout_s)
        except BackendError as exc:
            log.error("error recovery failed: %s", exc)
            self._reject(Reject.ROBOT_ERROR, f"recovery failed: {exc}", t_recv)
            return
        with self._lock:
            self._n_recoveries += 1
        self._last_state = self.backend.read_state()

    def _open_session(self, ident: bytes, msg: P.Hello, t_recv: int) -> None:
        with self._lock:
            s = _Session(identity=ident, session_id=self._next_session_id, rate_hz=msg.rate_hz, last_seq=msg.seq)
            self._next_session_id += 1
            self._session = s
        if self._mode is Mode.IDLE:
            st = self.backend.read_state()
            self._last_state = st
            self._motion = at_rest(st.q_rad)
            self._q_hold = st.q_rad.copy()
            if self._flags(st):  # a faulted robot, or one parked outside the limits: command nothing
                self._set_mode(Mode.ERROR, f"session {s.session_id} opened with robot flags {ErrorFlag(self._flags(st))!r}")
            else:
                self._set_mode(Mode.HOLD, f"session {s.session_id} opened by {msg.client_name!r}")
        elif self._mode is not Mode.ERROR:
            self._enter_hold(f"session {s.session_id} opened by {msg.client_name!r}")
        self._target_q = None
        self._target_seq = -1
        t3 = time.monotonic_ns()
        seq = self._next_seq()
        cfg = self.config.safety
        self._send(ident, P.Welcome(seq, t3, s.session_id, msg.seq, msg.t_send_ns, t_recv, tuple(self._q_hold.tolist()),
                                    cfg.watchdog_timeout_s, cfg.max_message_age_s, cfg.resume_tolerance_rad))
        s.remember_reply(seq, msg.t_send_ns, t_recv, t3)
