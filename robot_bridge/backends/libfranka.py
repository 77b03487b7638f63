"""Backend for libfranka through ``pylibfranka`` (optional; install the ``libfranka`` extra).

libfranka needs a command every millisecond, paced by the robot: a thread owned by this backend runs
``readOnce`` / ``writeOnce`` of a joint-position control session (joint impedance controller) and always
writes the newest command the server gave it. The server's 1 kHz safety-checked commands therefore reach
the robot within one robot cycle, and a late server tick repeats the previous position rather than
letting libfranka time out. A control exception (reflex, limit, communication) ends the session, is
reported as ``BACKEND_FAULT`` and stops commanding; `recover` runs libfranka's automatic error
recovery and starts a new session.

pylibfranka is imported on `connect`, never at package import.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .._errors import BackendError, BridgeTimeoutError
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


class LibfrankaBackend(Backend):
    """pylibfranka joint-position control behind the safety layer."""

    name = "libfranka"

    def __init__(self, config: LibfrankaConfig = LibfrankaConfig()) -> None:
        self.config = config
        self.rate_hz = config.rate_hz
        self._lock = threading.Lock()
        self._robot = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._q: np.ndarray | None = None
        self._dq = np.zeros(7)
        self._tau: np.ndarray | None = None
        self._t_state_ns = 0
        self._cmd_q: np.ndarray | None = None
        self._flags = 0
        self._motion = False  # a control session is running
        self.error: BaseException | None = None
        self.n_cycles = 0

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

    def _run(self) -> None:
        plf = self._plf
        try:
            control = self._robot.start_joint_position_control(plf.ControllerMode.JointImpedance)
            state, _ = control.readOnce()
            self._store(state)
            with self._lock:
                self._cmd_q = np.asarray(state.q, dtype=float)  # start by holding where the arm is
            self._motion = True
            while not self._stop.is_set():
                with self._lock:
                    q_cmd = self._cmd_q.tolist()
                control.writeOnce(plf.JointPositions(q_cmd))
                state, _ = control.readOnce()
                self._store(state)
                self.n_cycles += 1
            last = plf.JointPositions(q_cmd)
            last.motion_finished = True
            control.writeOnce(last)
        except Exception as exc:  # a control exception ends the session: report it, stop commanding
            self.error = exc
            with self._lock:
                self._flags |= ErrorFlag.BACKEND_FAULT
            log.error("libfranka control session ended: %s", exc)
        finally:
            self._motion = False

    def recover(self, timeout_s: float = 5.0) -> None:
        """Run libfranka's automatic error recovery and start a new control session."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._robot.automatic_error_recovery()
        self.error = None
        with self._lock:
            self._flags = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="libfranka-control", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
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
                self._cmd_q = np.asarray(cmd.q_rad, dtype=float).copy()
