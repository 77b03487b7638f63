"""The teleoperator interface, episode-control events, and the policy adapter used by the live loop."""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..base import Policy

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

__all__ = ["EpisodeEvent", "TeleopError", "Teleoperator", "TeleopPolicy", "TargetLimits", "read_target"]


class TeleopError(RuntimeError):
    """A teleoperation device cannot be used (absent, disconnected, no terminal)."""


class EpisodeEvent(enum.Enum):
    """Episode control asked for by the operator."""

    NEXT = "next"  #: end the episode now and keep it
    RERECORD = "rerecord"  #: drop the episode in progress and record it again
    STOP = "stop"  #: drop the episode in progress and stop collecting


@dataclass(frozen=True)
class TargetLimits:
    """Where a pusher target may go: the table rectangle [m], world frame."""

    x_range_m: tuple[float, float] = (0.36, 0.72)
    y_range_m: tuple[float, float] = (-0.30, 0.30)

    def clip(self, xy: np.ndarray) -> np.ndarray:
        return np.array([np.clip(xy[0], *self.x_range_m), np.clip(xy[1], *self.y_range_m)], dtype=np.float64)


class Teleoperator(ABC):
    """A device (or program) that gives pusher targets.

    ``connect()`` / ``disconnect()`` (also as a context manager); ``get_action(obs)`` returns the
    pusher target (x, y) [m], world frame, shape [2], from the twin's current observation of its one
    world; ``events()`` returns and clears the episode-control events since the last call.
    ``giving_input`` says whether the operator is moving the device now (within ``input_hold_s`` of
    their last motion input, as seen by ``get_action``): what lets an operator take over from a policy.
    """

    name: str = "teleoperator"
    #: The operator counts as giving input this long after their last motion input [s] (bridges key
    #: repeat gaps and a stick passing through its centre).
    input_hold_s: float = 0.5

    def __init__(self) -> None:
        self._events: deque[EpisodeEvent] = deque(maxlen=16)
        self._connected = False
        self._last_input_s: float | None = None

    def note_input(self) -> None:
        """The operator moved the device (a device calls this for motion input, not for buttons)."""
        self._last_input_s = time.monotonic()

    def forget_input(self) -> None:
        """A new episode: earlier motion input no longer counts as giving input."""
        self._last_input_s = None

    @property
    def giving_input(self) -> bool:
        return self._last_input_s is not None and time.monotonic() - self._last_input_s < self.input_hold_s

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def __enter__(self) -> "Teleoperator":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.disconnect()

    def reset(self) -> None:
        """A new episode starts (targets restart at the pusher)."""

    def set_twin_config(self, config: "TwinConfig") -> None:  # noqa: B027 - optional hook, no-op by default
        """The live twin's configuration changed (the measured block); a device that plans with the twin
        (the virtual operator) adopts it."""

    @abstractmethod
    def get_action(self, obs: "Observation") -> np.ndarray:
        """The pusher target (x, y) [m], world frame, shape [2]."""

    def push_event(self, event: EpisodeEvent) -> None:
        self._events.append(event)

    def events(self) -> list[EpisodeEvent]:
        out = list(self._events)
        self._events.clear()
        return out


def read_target(teleop: Teleoperator, obs: "Observation") -> np.ndarray:
    """The connected teleoperator's pusher target (x, y) [m] [2] for ``obs``; ``TeleopError`` when it is not
    connected or the target is not finite."""
    if not teleop.is_connected:
        raise TeleopError(f"the {teleop.name} teleoperator is not connected")
    a = np.asarray(teleop.get_action(obs), dtype=np.float64).reshape(2)
    if not np.all(np.isfinite(a)):
        raise TeleopError(f"the {teleop.name} teleoperator gave a non-finite target {a}")
    return a


class TeleopPolicy(Policy):
    """A ``Teleoperator`` seen as a one-world ``Policy`` by the live loop. ``on_act(obs)`` is called with
    the observation each action is taken from (before the twin steps)."""

    def __init__(self, teleop: Teleoperator, on_act: Callable[["Observation"], None] | None = None) -> None:
        self.teleop = teleop
        self.on_act = on_act

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        self.teleop.reset()

    def set_twin_config(self, config: "TwinConfig") -> None:
        self.teleop.set_twin_config(config)

    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        if self.on_act is not None:
            self.on_act(obs)
        return read_target(self.teleop, obs)[None]
