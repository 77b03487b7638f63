"""The robot server's control half: accepted targets -> the reference path -> the motion limiter -> the
backend, once per tick, and braking to rest (on stop, after a failure). `RobotServer` owns the state;
this mixin holds the methods that move the arm, so each file has one job (sockets and sessions in
``server.py``). See ``design.md``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from . import protocol as P
from .backends.base import BackendCommand, BackendState
from .motion import at_rest, brake, stopping_pose, track
from .protocol import ErrorFlag, Mode, Reject
from .safety import check_command, check_target, check_timing, interpolate_reference, watchdog_expired

if TYPE_CHECKING:
    from ._sessions import _Session

log = logging.getLogger("robot_bridge.server")


class _FollowerControl:
    """Methods of `RobotServer` that command the arm (mixed in; the attributes are the server's)."""

    def _brake_to_rest(self, why: str) -> None:
        """Tick at the backend rate with the arm braking (STOPPED) until it is at rest, within the
        longest braking time the limits allow (plus a margin)."""
        if self._mode not in (Mode.FOLLOWING, Mode.HOLD, Mode.STOPPED):
            return  # nothing is being commanded (IDLE, ERROR)
        if not self._motion.at_rest:
            self._q_hold = stopping_pose(self._motion, self.limits)
        self._set_mode(Mode.STOPPED, why)
        lim = self.limits
        t_brake = float(np.max(lim.dq_max_rad_s / lim.ddq_max_rad_s2 + lim.ddq_max_rad_s2 / lim.dddq_max_rad_s3))
        deadline = time.monotonic_ns() + int((2.0 * t_brake + 0.1) * 1e9)
        while not self._motion.at_rest and self._mode is Mode.STOPPED:
            now = time.monotonic_ns()
            if now > deadline:
                log.error("the arm did not come to rest within %.2f s of braking", 2.0 * t_brake + 0.1)
                return
            wait = self._last_tick_ns + self._period_ns - now
            if wait > 0:
                time.sleep(wait * 1e-9)
            self._tick(time.monotonic_ns())

    def _enter_hold(self, why: str) -> None:
        self._q_hold = stopping_pose(self._motion, self.limits)
        self._set_mode(Mode.HOLD, why)

    def _on_target(self, s: _Session, msg: P.JointTarget, t_recv: int) -> bool:
        offset = s.clock.offset_ns if s.clock.synced else None
        v = check_timing(msg.seq, s.last_seq, msg.t_send_ns, t_recv, offset, self.config.safety)
        if v and v[0].reason in (Reject.DUPLICATE, Reject.REORDERED):
            self._reject(v[0].reason, v[0].detail, t_recv)
            return False
        s.last_seq = msg.seq
        if v:
            self._reject(v[0].reason, v[0].detail, t_recv)
            return False
        if self._mode is Mode.STOPPED:
            self._reject(Reject.STOPPED, "stopped: a new handshake is needed", t_recv)
            return False
        if self._mode is Mode.ERROR:
            self._reject(Reject.ROBOT_ERROR, "robot reports an error", t_recv)
            return False
        resuming = self._mode is not Mode.FOLLOWING
        t0 = t_recv - self._period_ns  # the arrival tick counts as one tick into the new segment
        reference = self._q_hold if resuming else self._path(t0)[0]
        d = check_target(np.asarray(msg.q_rad), None if msg.dq_rad_s is None else np.asarray(msg.dq_rad_s),
                         reference, self.limits, resuming)
        if not d.accepted:
            self._reject(d.violations[0].reason, d.violations[0].detail, t_recv)
            return False
        # Accepted: the reference moves on from where its path is to this target over one send interval
        # (the arrival tick counts as one tick in). A target that arrives later than the stream's usual
        # latency finds the reference carried on past the previous target (bounded, see
        # ``interpolate_reference``), and its segment is shortened by that much: the robot keeps the
        # targets' timing instead of stalling and then sprinting. However targets are timed, a segment
        # never asks for more than the velocity limit: the reference is bounded in time, not only per
        # message.
        safety = self.config.safety
        latency = t_recv - (msg.t_send_ns + offset)
        if resuming or self._target_seq < 0:
            self._interp_from = self._reference(t_recv)
            self._latencies.clear()
            duration = int(1e9 / s.rate_hz)
        else:
            self._interp_from = reference
            late = max(0, latency - min(self._latencies, default=latency))
            interval = msg.t_send_ns + offset - self._target_t_send_ns
            duration = interval - min(late, int(safety.max_extrapolation_s * 1e9))
        self._latencies.append(latency)
        self._seg_t0_ns = t0
        slowest_ns = int(max(abs(x - y) / v for x, y, v in zip(d.q_rad.tolist(), self._interp_from.tolist(),
                                                               self.limits._dq_max)) * 1e9) + 1
        self._seg_t1_ns = t0 + max(min(max(duration, self._period_ns), int(safety.max_interp_period_s * 1e9)), slowest_ns)
        if not self._target_delivered:
            self._n_superseded += 1
        self._target_q, self._target_dq = d.q_rad, d.dq_rad_s
        self._target_seq = msg.seq
        self._target_t_send_ns = msg.t_send_ns + offset
        self._target_arrival_ns = t_recv
        self._target_delivered = False
        self._last_valid_ns = t_recv
        with self._lock:
            self._n_accepted += 1
        if resuming:
            self._set_mode(Mode.FOLLOWING, f"target {msg.seq} within resume tolerance")
        return True

    def _reference(self, now: int) -> np.ndarray:
        if self._mode is Mode.FOLLOWING and self._target_q is not None:
            return self._path(now)[0]
        return self._q_hold

    def _path(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """The current target's reference path at time ``t_ns`` (monotonic, server clock): position
        [rad] and velocity [rad/s]."""
        return interpolate_reference(self._interp_from, self._target_q, (t_ns - self._seg_t0_ns) * 1e-9,
                                     (self._seg_t1_ns - self._seg_t0_ns) * 1e-9, self.config.safety.max_extrapolation_s)

    def _tick(self, now: int) -> None:
        """One control step. Decisions use the state read at the end of the previous tick (at most one
        tick old), so a command leaves without waiting for a state read; the new state is read after."""
        dt_s = (now - self._last_tick_ns) * 1e-9
        self._last_tick_ns = now
        self._n_ticks += 1
        st = self._last_state
        extra = 0
        flags = self._flags(st)
        if flags:
            if self._mode is not Mode.ERROR and self._mode is not Mode.IDLE:
                log.error("backend reports %r: holding off all commands", ErrorFlag(flags))
                self._set_mode(Mode.ERROR, "backend error flags")
        elif self._mode is Mode.ERROR:
            self._motion = at_rest(st.q_rad)  # inside the limits, or _flags() would be set
            self._q_hold = st.q_rad.copy()
            self._set_mode(Mode.HOLD, "backend error cleared")
        if self._mode is Mode.IDLE or self._mode is Mode.ERROR:
            if self._mode is Mode.ERROR:  # follow the measured pose so a later hold starts there
                self._motion = at_rest(st.q_rad)
            self.backend.idle(now)
        else:
            if self._mode is Mode.FOLLOWING and watchdog_expired(now, self._last_valid_ns, self.config.safety):
                self._n_watchdog += 1
                self._enter_hold(f"watchdog: no valid target for {(now - self._last_valid_ns) * 1e-6:.1f} ms")
            previous = self._motion
            if self._mode is Mode.FOLLOWING:
                ref_q, ref_dq = self._path(now)
                new, braked = track(previous, ref_q, ref_dq, dt_s, self.limits)
                self._n_position_brakes += braked
            else:  # HOLD, STOPPED: come to rest (and stay there, exactly)
                new = brake(previous, dt_s, self.limits)
                if new.at_rest and not previous.at_rest:
                    self._q_hold = np.array(new.q_rad)
            gate = check_command(new, previous, dt_s, self.limits)
            if gate:
                self._n_gate += 1
                log.error("command gate refused a command: %s", "; ".join(v.detail for v in gate))
                extra = ErrorFlag.COMMAND_GATE
                new = brake(previous, dt_s, self.limits)  # hold safely: braking, if the gate takes that
                if check_command(new, previous, dt_s, self.limits):
                    new = None
            if new is None:
                self.backend.idle(now)
            else:
                following = self._mode is Mode.FOLLOWING
                self.backend.command(BackendCommand(
                    now, np.array(new.q_rad), np.array(new.dq_rad_s), self._target_seq if following else -1,
                    self._target_t_send_ns if following else -1, np.array(new.ddq_rad_s2)))
                self._n_commands += 1
                self._motion = new
                self._target_delivered = True
        self._last_state = st = self.backend.read_state()
        self._publish(now, st, extra)

    def _flags(self, st: BackendState) -> int:
        """The backend's error flags, plus OUTSIDE_LIMITS when the arm is outside the enforced limits
        while nothing is commanding it (parked there, or pushed there during an error): starting to
        command from such a pose would first have to jump into the limits, so the server waits for the
        arm to be brought back (e.g. by hand-guiding) instead."""
        flags = int(st.error_flags)
        if self._mode in (Mode.IDLE, Mode.ERROR) and not self.limits.contains(st.q_rad):
            flags |= ErrorFlag.OUTSIDE_LIMITS
        return flags
