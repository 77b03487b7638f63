"""Gamepad teleoperation through SDL (pygame), headless (``SDL_VIDEODRIVER=dummy``).

Left stick: forward (up) = +x in the world, left = +y, with the mapping's radial dead zone and speed.
Buttons (SDL game-controller order, e.g. Xbox): A (0) ends the episode and keeps it, B (1) re-records,
Back (6) stops; left/right bumpers (4/5) scale the speed down/up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._base import EpisodeEvent, TargetLimits, Teleoperator, TeleopError
from ._mapping import VelocityIntegrator, VelocityMapping, apply_dead_zone

if TYPE_CHECKING:
    from twin.env import Observation

__all__ = ["GamepadConfig", "GamepadTeleop"]


@dataclass(frozen=True)
class GamepadConfig:
    mapping: VelocityMapping = field(default_factory=lambda: VelocityMapping(dead_zone=0.15))
    #: SDL joystick index.
    index: int = 0
    axis_x: int = 0  #: stick's horizontal axis (right = +1)
    axis_y: int = 1  #: stick's vertical axis (down = +1)
    button_next: int = 0
    button_rerecord: int = 1
    button_stop: int = 6
    button_slower: int = 4
    button_faster: int = 5
    #: How long each poll's deflection is integrated for [s] (the control period).
    period_s: float = 0.1
    #: Fail on connect when no gamepad is plugged in (tests feed synthetic SDL events instead).
    require_device: bool = True


class GamepadTeleop(Teleoperator):
    """Reads SDL joystick events; ``handle(event)`` takes synthetic ones."""

    name = "gamepad"

    def __init__(self, config: GamepadConfig = GamepadConfig(), limits: TargetLimits = TargetLimits()) -> None:
        super().__init__()
        self.config = config
        self.integrator = VelocityIntegrator(config.mapping, limits)
        self.stick = np.zeros(2)  #: raw (horizontal, vertical) deflection in [-1, 1]
        self._pygame = None
        self._joystick = None

    def connect(self) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            raise TeleopError("the gamepad needs pygame: pip install 'realsim[teleop]'") from exc
        pygame.display.init()  # SDL's event queue
        pygame.joystick.init()
        if pygame.joystick.get_count() > self.config.index:
            self._joystick = pygame.joystick.Joystick(self.config.index)
        elif self.config.require_device:
            raise TeleopError(f"no gamepad at SDL index {self.config.index} ({pygame.joystick.get_count()} found)")
        self._pygame = pygame
        super().connect()

    def disconnect(self) -> None:
        if self._pygame is not None:
            self._pygame.joystick.quit()
            self._pygame.display.quit()
            self._pygame = None
        super().disconnect()

    def reset(self) -> None:
        self.integrator.reset(None)

    def handle(self, event) -> None:  # noqa: ANN001 - a pygame event
        pg, c = self._pygame, self.config
        if pg is None:
            raise TeleopError("the gamepad is not connected")
        if event.type == pg.JOYAXISMOTION:
            if event.axis == c.axis_x:
                self.stick[0] = float(event.value)
            elif event.axis == c.axis_y:
                self.stick[1] = float(event.value)
        elif event.type == pg.JOYBUTTONDOWN:
            b = event.button
            if b == c.button_next:
                self.push_event(EpisodeEvent.NEXT)
            elif b == c.button_rerecord:
                self.push_event(EpisodeEvent.RERECORD)
            elif b == c.button_stop:
                self.push_event(EpisodeEvent.STOP)
            elif b == c.button_faster:
                self.integrator.faster()
            elif b == c.button_slower:
                self.integrator.slower()
        elif event.type == pg.JOYDEVICEREMOVED:
            self.stick[:] = 0.0  # a pulled cable must not keep the target moving
            self.push_event(EpisodeEvent.STOP)

    def axes(self) -> np.ndarray:
        """Deflection (forward, left) in [-1, 1]: world (+x, +y)."""
        return np.array([-self.stick[1], -self.stick[0]])

    def get_action(self, obs: "Observation") -> np.ndarray:
        if self._pygame is None:
            raise TeleopError("the gamepad is not connected")
        pg = self._pygame
        for event in pg.event.get((pg.JOYAXISMOTION, pg.JOYBUTTONDOWN, pg.JOYDEVICEREMOVED)):
            self.handle(event)
        axes = self.axes()
        if np.any(apply_dead_zone(axes, self.integrator.mapping.dead_zone)):
            self.note_input()
        return self.integrator.step(axes, self.config.period_s, np.asarray(obs.pusher_xy[0], dtype=np.float64))
