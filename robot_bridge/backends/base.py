"""The backend interface every robot sits behind. Backends see only commands that passed the safety
layer; they never talk to the network."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .._errors import BackendError
from ..limits import EffectiveLimits

__all__ = ["BackendState", "BackendCommand", "Backend"]


@dataclass(frozen=True, slots=True)
class BackendState:
    """One measurement of the robot.

    Attributes:
        t_ns: when it was measured [ns, server ``time.monotonic_ns()``].
        q_rad: joint positions [rad], shape (7,).
        dq_rad_s: joint velocities [rad/s], shape (7,).
        tau_nm: measured joint torques [N m], shape (7,), or None when the backend has none.
        error_flags: a `robot_bridge.protocol.ErrorFlag` mask; non-zero stops commanding.
    """

    t_ns: int
    q_rad: np.ndarray
    dq_rad_s: np.ndarray
    tau_nm: np.ndarray | None = None
    error_flags: int = 0


@dataclass(frozen=True, slots=True)
class BackendCommand:
    """One joint command at the backend rate, already checked by `robot_bridge.safety`.

    Attributes:
        t_ns: when the server issued it [ns, server clock].
        q_rad: commanded joint positions [rad], shape (7,).
        dq_rad_s: commanded joint velocities [rad/s], shape (7,).
        target_seq: seq of the newest client target this command derives from (-1 while holding).
        target_t_send_ns: that target's send time converted to the server clock [ns] (-1 while holding).
        ddq_rad_s2: commanded joint accelerations [rad/s^2], shape (7,), or None.
    """

    t_ns: int
    q_rad: np.ndarray
    dq_rad_s: np.ndarray
    target_seq: int = -1
    target_t_send_ns: int = -1
    ddq_rad_s2: np.ndarray | None = None


class Backend(abc.ABC):
    """A robot the server can command at ``rate_hz``.

    The server calls, from its one control thread: `connect` once, then each tick either `command`
    (when it is moving or holding) or `idle` (when no client session exists or the robot is in error),
    and `read_state` every tick. `disconnect` is called once at shutdown.
    """

    name: str = "backend"
    rate_hz: float = 1000.0
    #: The limits the server enforces, set by the server before `connect` (for a backend that shapes
    #: motion itself at its own rate, as the libfranka one does per robot cycle).
    limits: "EffectiveLimits | None" = None

    @abc.abstractmethod
    def connect(self, timeout_s: float) -> None:
        """Reach the robot and wait for its first state. Raises `BackendError` or `BridgeTimeoutError`."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the robot. Idempotent."""

    @abc.abstractmethod
    def read_state(self) -> BackendState:
        """The latest measured state (never blocks for long)."""

    @abc.abstractmethod
    def command(self, cmd: BackendCommand) -> None:
        """Send one command. Must not block longer than one backend period."""

    def idle(self, t_ns: int) -> None:
        """Called on ticks that command nothing. Simulated backends advance time here."""

    def recover(self, timeout_s: float) -> None:
        """The robot's own error recovery, asked for by the operator (`robot_bridge.protocol.Recover`).
        Raises `BackendError` when the backend has none or it fails."""
        raise BackendError(f"the {self.name} backend has no error recovery")

    def __enter__(self) -> "Backend":
        self.connect(timeout_s=5.0)
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
