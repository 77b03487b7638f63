"""Teleoperators: devices (and the virtual operator) that give pusher targets to the live loop.

Every teleoperator follows ``Teleoperator`` (connect / ``get_action(obs)`` / disconnect, episode
events); ``TeleopPolicy`` lets the live loop drive the twin with one; ``TakeoverPolicy`` lets a policy drive and
the operator take over. ``make_teleop`` picks one by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import EpisodeEvent, TargetLimits, Teleoperator, TeleopError, TeleopPolicy
from ._browser import BrowserConfig, BrowserTeleop
from ._gamepad import GamepadConfig, GamepadTeleop
from ._keyboard import KeyboardConfig, KeyboardTeleop, parse_keys
from ._mapping import VelocityIntegrator, VelocityMapping, apply_dead_zone
from ._spacemouse import SpaceMouseConfig, SpaceMouseTeleop, parse_report
from ._takeover import TakeoverPolicy

if TYPE_CHECKING:
    from twin.config import TwinConfig

    from ..expert import ExpertConfig

__all__ = ["BrowserConfig", "BrowserTeleop", "EpisodeEvent", "GamepadConfig", "GamepadTeleop", "KeyboardConfig", "KeyboardTeleop", "SpaceMouseConfig",
           "SpaceMouseTeleop", "TakeoverPolicy", "TargetLimits", "TeleopError", "TeleopPolicy", "Teleoperator", "TELEOPERATORS",
           "VelocityIntegrator", "VelocityMapping", "VirtualOperator", "apply_dead_zone", "make_teleop", "parse_keys",
           "parse_report"]

#: Names accepted by ``make_teleop`` (and ``realsim collect --teleop``).
TELEOPERATORS: tuple[str, ...] = ("virtual", "keyboard", "browser", "gamepad", "spacemouse")


def make_teleop(name: str, twin: "TwinConfig", expert: "ExpertConfig | None" = None,
                keyboard: KeyboardConfig = KeyboardConfig(), gamepad: GamepadConfig = GamepadConfig(),
                spacemouse: SpaceMouseConfig = SpaceMouseConfig(), browser: BrowserConfig = BrowserConfig()) -> Teleoperator:
    """The teleoperator called ``name`` for the twin's workspace (not yet connected)."""
    limits = TargetLimits(tuple(twin.workspace.x_range_m), tuple(twin.workspace.y_range_m))
    if name == "virtual":
        from ._virtual import VirtualOperator

        return VirtualOperator(twin, expert)
    if name == "keyboard":
        return KeyboardTeleop(keyboard, limits)
    if name == "browser":
        from twin.pusht import block_keypoints

        return BrowserTeleop(browser, limits, goal_outline=block_keypoints(twin.block, twin.goal.pose[None])[0])
    period_s = 1.0 / twin.control_hz
    if name == "gamepad":
        from dataclasses import replace

        return GamepadTeleop(replace(gamepad, period_s=period_s), limits)
    if name == "spacemouse":
        from dataclasses import replace

        return SpaceMouseTeleop(replace(spacemouse, period_s=period_s), limits)
    raise ValueError(f"unknown teleoperator {name!r}; known: {', '.join(TELEOPERATORS)}")


def __getattr__(name: str):
    if name == "VirtualOperator":
        from ._virtual import VirtualOperator

        return VirtualOperator
    raise AttributeError(name)
