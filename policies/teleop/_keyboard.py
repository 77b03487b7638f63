"""Keyboard teleoperation in a terminal (works over SSH): keys nudge the pusher target.

Keys: arrows or W/A/S/D move the target (up/W = +x away from the robot base, left/A = +y); ``+``/``-``
scale the speed; ``n`` or Enter ends the episode and keeps it; ``r`` or Backspace re-records it;
``q`` or Esc stops collecting. Each key press (or auto-repeat) moves the target for ``press_s`` at the
mapping's speed, so holding a key moves it steadily.
"""

from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._base import EpisodeEvent, TargetLimits, Teleoperator, TeleopError
from ._mapping import VelocityIntegrator, VelocityMapping

if TYPE_CHECKING:
    from twin.env import Observation

__all__ = ["KeyboardConfig", "KeyboardTeleop", "parse_keys"]

_ESCAPES = {"\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
            "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left"}
_MOVES = {"up": (1.0, 0.0), "down": (-1.0, 0.0), "left": (0.0, 1.0), "right": (0.0, -1.0),
          "w": (1.0, 0.0), "s": (-1.0, 0.0), "a": (0.0, 1.0), "d": (0.0, -1.0)}
_EVENTS = {"n": EpisodeEvent.NEXT, "enter": EpisodeEvent.NEXT, "r": EpisodeEvent.RERECORD,
           "backspace": EpisodeEvent.RERECORD, "q": EpisodeEvent.STOP, "esc": EpisodeEvent.STOP}


def parse_keys(text: str) -> list[str]:
    """Terminal input -> key names ("up", "w", "enter", "esc", "+", ...). Unknown escape sequences are
    dropped; a lone ESC is the Esc key."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\x1b":
            seq = text[i:i + 3]
            if seq in _ESCAPES:
                keys.append(_ESCAPES[seq])
                i += 3
                continue
            if i + 1 < len(text) and text[i + 1] in "[O":  # another sequence: skip to its final byte
                j = i + 2
                while j < len(text) and not ("@" <= text[j] <= "~"):
                    j += 1
                i = j + 1
                continue
            keys.append("esc")
            i += 1
            continue
        ch = text[i]
        keys.append({"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace", "=": "+"}.get(ch, ch.lower()))
        i += 1
    return keys


@dataclass(frozen=True)
class KeyboardConfig:
    mapping: VelocityMapping = field(default_factory=VelocityMapping)
    #: Each key press moves the target for this long at full speed [s].
    press_s: float = 0.05

    def __post_init__(self) -> None:
        if not self.press_s > 0:
            raise ValueError("press_s must be > 0")


class KeyboardTeleop(Teleoperator):
    """Reads keys from a terminal file descriptor (default: stdin) in cbreak mode, without blocking."""

    name = "keyboard"
    #: longer than a terminal's key-repeat delay (X11: 660 ms), so a held key keeps control
    input_hold_s = 1.0

    def __init__(self, config: KeyboardConfig = KeyboardConfig(), limits: TargetLimits = TargetLimits(),
                 fd: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.integrator = VelocityIntegrator(config.mapping, limits)
        self._fd = fd
        self._saved = None

    def connect(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno() if self._fd is None else self._fd
        if not os.isatty(fd):
            raise TeleopError("the keyboard teleoperator needs a terminal (stdin is not a TTY); "
                              "use --teleop virtual for headless runs")
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._fd = fd
        super().connect()

    def disconnect(self) -> None:
        import termios

        if self._saved is not None and self._fd is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        super().disconnect()

    def reset(self) -> None:
        self.integrator.reset(None)

    def handle(self, keys: list[str], start_xy: np.ndarray) -> None:
        """Apply key presses (also used by tests with synthetic keys)."""
        for key in keys:
            if key in _MOVES:
                self.integrator.step(np.array(_MOVES[key]), self.config.press_s, start_xy)
                self.note_input()
            elif key == "+":
                self.integrator.faster()
            elif key == "-":
                self.integrator.slower()
            elif key in _EVENTS:
                self.push_event(_EVENTS[key])

    def read_keys(self) -> list[str]:
        """Keys typed since the last call (non-blocking)."""
        if self._fd is None:
            return []
        data = b""
        while select.select([self._fd], [], [], 0)[0]:
            chunk = os.read(self._fd, 1024)
            if not chunk:
                break
            data += chunk
            if len(data) > 65536:  # bounded
                break
        return parse_keys(data.decode("utf-8", errors="ignore"))

    def get_action(self, obs: "Observation") -> np.ndarray:
        start = np.asarray(obs.pusher_xy[0], dtype=np.float64)
        self.handle(self.read_keys(), start)
        if self.integrator.target is None:
            self.integrator.reset(start)
        return self.integrator.target.copy()
