"""Backend for libfranka through ``pylibfranka`` (optional; install the ``libfranka`` extra).

libfranka needs a command every millisecond, paced by the robot: a thread owned by this backend runs
``readOnce`` / ``writeOnce`` of a joint-position control session (joint impedance controller). The
server's commands arrive at its own ticks, which jitter against the robot's cycle (two in one cycle,
none in the next), so the thread does not write them as they are: on every robot cycle it steps the
same motion limiter the server uses (`robot_bridge.motion`) toward the newest server command (carried
on by its velocity for at most ``max_extrapolation_s``), with the cycle's own duration. What the robot
receives therefore holds the position limits and the velocity, acceleration and jerk caps at the
robot's 1 kHz, whatever the server's timing: a late server tick is no velocity step, a server that
falls silent is a jerk-limited stop. This is the second layer that libfranka's own rate limiter
(``franka::limitRate``) would be: pylibfranka (0.21) does not expose it, and its
``start_joint_position_control`` passes commands to the robot unfiltered.

A control exception (reflex, limit, communication) ends the session, is reported as
``BACKEND_FAULT`` and stops commanding; `recover` (the operator's `robot_bridge.protocol.Recover`,
``realsim robot-server --recover``) runs libfranka's automatic error recovery and starts a new session.
`disconnect` brakes to rest before it ends the session.

pylibfranka is imported on `connect`, never at package import.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .._errors import BackendError, BridgeTimeoutError
from ..limits import EffectiveLimits, effective_limits
from ..motion import MotionState, at_rest, brake, track
from ..protocol import ErrorFlag
from .base import Backend, BackendCommand, BackendState

__all__ = ["LibfrankaConfig", "LibfrankaBackend"]

log = logging.getLogger("robot_bridge.backends.libfranka")


@dataclass(frozen=True)
class LibfrankaConfig:
    """Settings of the libfranka backend."""

    hostname: str = "127.0.0.1"  # robot (FCI) address; a franky-sim server for tests
    enforce_realtime: bool = False  # True on an RT kernel; False accepts a normal scheduler
    rate_hz: float = 1000.0
    # pylibfranka's blocking calls keep the GIL; a short switch interval lets the server's control
    # thread run between robot cycles (this sets the interpreter-wide value; 0 leaves it alone) [s]
    gil_switch_interval_s: float = 1e-4
    written_log_cycles: int = 20_000  # the newest commands written to the robot kept for inspection


class LibfrankaBackend(Backend):
    """pylibfranka joint-position control behind the safety layer, shaped per robot cycle."""

    name = "libfranka"

    def __init__(self, config: LibfrankaConfig = LibfrankaConfig()) -> None:
        self.config = config
        self.rate_hz = config.rate_hz
        self.limits: EffectiveLimits = effective_limits()  # the server sets its own before connecting
        self._lock = threading.Lock()
        self._robot = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._q: np.ndarray | None = None
        self._dq = np.zeros(7)
        self._tau: np.ndarray | None = None
        self._t_state_ns = 0
        self._cmd: BackendCommand | None = None  # the server's newest command
        self._flags = 0
        self._motion = False  # a control session is running
        self.error: BaseException | None = None
        self.n_cycles = 0
        #: (robot time [ns], q written [rad]) of the newest cycles: what the robot received
        self.written: collections.deque = collections.deque(maxlen=config.written_log_cycles)

    def connect(self, timeout_s: float = 10.0) -> None:
        try:
            import pylibfranka as plf
        except ImportError as exc:
            raise BackendError("libfranka backend needs pylibfranka (pip install 'realsim[libfranka]')") from exc
        self._plf = plf
        if self.config.gil_switch_interval_s > 0:
            sys.setswitchinterval(self.config.gil_switch_interval_s)
        rt = plf.RealtimeConfig.kEnforce if self.config.enforce_realtime else plf.RealtimeConfig.kIgnore
        try:
            self._robot = plf.Robot(self.config.hostname, rt)
            state = self._robot.read_once()
        except Exception as exc:  # libfranka raises its own exception types
            raise BackendError(f"cannot reach the robot at {self.config.hostname}: {exc}") from exc
        self._store(state)
        self._start_session(timeout_s)

    def _start_session(self, timeout_s: float) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="libfranka-control", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._motion and self.error is None:
            if time.monotonic() > deadline:
                raise BridgeTimeoutError("libfranka control session did not start")
            time.sleep(0.005)
        if self.error is not None:
            raise BackendError("libfranka control session failed to start") from self.error

    def _store(self, state) -> None:
        q = np.asarray(state.q, dtype=float)
        fault = bool(state.current_errors) or self.error is not None
        with self._lock:
            self._q, self._dq, self._tau = q, np.asarray(state.dq, dtype=float), np.asarray(state.tau_J, dtype=float)
            self._t_state_ns = time.monotonic_ns()
            self._flags = int(ErrorFlag.BACKEND_FAULT) if fault else 0

    def _reference(self, now_ns: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The server's newest command carried on by its velocity to now (bounded), or None."""
        with self._lock:
            cmd = self._cmd
        if cmd is None:
            return None
        age = (now_ns - cmd.t_ns) * 1e-9
        if 0.0 <= age <= self.limits.config.max_extrapolation_s:
            return cmd.q_rad + cmd.dq_rad_s * age, cmd.dq_rad_s
        return cmd.q_rad + cmd.dq_rad_s * self.limits.config.max_extrapolation_s, np.zeros(7)

    def _run(self) -> None:
        plf = self._plf
        t_robot_ns = 0
        try:
            control = self._robot.start_joint_position_control(plf.ControllerMode.JointImpedance)
            state, _ = control.readOnce()
            self._store(state)
            motion: MotionState = at_rest(state.q)  # start by holding where the arm is
            with self._lock:
                self._cmd = None
            self._motion = True
            h = 1.0 / self.config.rate_hz
            while True:
                stopping = self._stop.is_set()
                ref = None if stopping else self._reference(time.monotonic_ns())
                if ref is None:
                    motion = brake(motion, h, self.limits)
                else:
                    motion, _ = track(motion, ref[0], ref[1], h, self.limits)
                finished = stopping and motion.at_rest
                command = plf.JointPositions(list(motion.q_rad))
                command.motion_finished = finished
                control.writeOnce(command)
                t_robot_ns += int(round(h * 1e9))
                self.written.append((t_robot_ns, motion))
                if finished:
                    break
                state, duration = control.readOnce()
                h = max(duration.to_sec(), 1e-4)
                self._store(state)
                self.n_cycles += 1
        except Exception as exc:  # a control exception ends the session: report it, stop commanding
            self.error = exc
            with self._lock:
                self._flags |= ErrorFlag.BACKEND_FAULT
            log.error("libfranka control session ended: %s", exc)
        finally:
            self._motion = False

    def recover(self, timeout_s: float = 5.0) -> None:
        """libfranka's automatic error recovery, then a new control session (the operator's decision)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self._robot.automatic_error_recovery()
        except Exception as exc:
            raise BackendError(f"libfranka error recovery failed: {exc}") from exc
        self.error = None
        with self._lock:
            self._flags = 0
        self._start_session(timeout_s)

    def disconnect(self) -> None:
        self._stop.set()  # the control thread brakes to rest, then finishes the motion
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._robot = None

    def read_state(self) -> BackendState:
        with self._lock:
            if self._q is None:
                raise BackendError("libfranka backend has no state (not connected)")
            flags = self._flags
            if (time.monotonic_ns() - self._t_state_ns) * 1e-9 > 0.05:
                flags |= ErrorFlag.STATE_STALE
            return BackendState(self._t_state_ns, self._q.copy(), self._dq.copy(),
                                None if self._tau is None else self._tau.copy(), int(flags))

    def command(self, cmd: BackendCommand) -> None:
        with self._lock:
            if self._motion:
                self._cmd = cmd
