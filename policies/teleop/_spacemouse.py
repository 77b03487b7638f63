"""3Dconnexion SpaceMouse through HID (``hidapi``): the puck's translation moves the pusher target.

HID reports (little-endian int16 axes, about +-350 at full deflection):
report 1 = translation (x, y, z) (newer devices append rotation (rx, ry, rz) to it), report 2 =
rotation, report 3 = buttons (bit 0 left, bit 1 right). Puck forward (-y on the device) = +x in the
world, puck left (-x) = +y. Buttons: left = end the episode and keep it, right = re-record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._base import EpisodeEvent, TargetLimits, Teleoperator, TeleopError
from ._mapping import VelocityIntegrator, VelocityMapping, apply_dead_zone

if TYPE_CHECKING:
    from twin.env import Observation

__all__ = ["SpaceMouseConfig", "SpaceMouseTeleop", "SpaceMouseState", "parse_report", "SPACEMOUSE_VENDOR_IDS"]

#: 3Dconnexion's USB vendor ids (Logitech-era and own).
SPACEMOUSE_VENDOR_IDS: tuple[int, ...] = (0x046D, 0x256F)


@dataclass
class SpaceMouseState:
    """Latest device state: axes in raw counts, buttons as a bit mask."""

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    buttons: int = 0


def parse_report(report: bytes | list[int], state: SpaceMouseState) -> list[int]:
    """Update ``state`` from one HID report; returns the buttons newly pressed (bit indices)."""
    data = bytes(report)
    if not data:
        return []
    rid = data[0]
    if rid == 1 and len(data) >= 7:
        state.translation = np.array(struct.unpack_from("<3h", data, 1), dtype=np.float64)
        if len(data) >= 13:
            state.rotation = np.array(struct.unpack_from("<3h", data, 7), dtype=np.float64)
    elif rid == 2 and len(data) >= 7:
        state.rotation = np.array(struct.unpack_from("<3h", data, 1), dtype=np.float64)
    elif rid == 3 and len(data) >= 2:
        new = int.from_bytes(data[1:3] if len(data) >= 3 else data[1:2], "little")
        pressed = [b for b in range(16) if (new >> b) & 1 and not (state.buttons >> b) & 1]
        state.buttons = new
        return pressed
    return []


@dataclass(frozen=True)
class SpaceMouseConfig:
    mapping: VelocityMapping = field(default_factory=lambda: VelocityMapping(dead_zone=0.08))
    #: Raw counts at full deflection.
    full_scale: float = 350.0
    #: How long each poll's deflection is integrated for [s] (the control period).
    period_s: float = 0.1
    vendor_id: int = 0
    product_id: int = 0

    def __post_init__(self) -> None:
        if not (self.full_scale > 0 and self.period_s > 0):
            raise ValueError("full_scale and period_s must be > 0")


class SpaceMouseTeleop(Teleoperator):
    """Reads a SpaceMouse's HID reports without blocking; ``feed(report)`` takes synthetic ones."""

    name = "spacemouse"

    def __init__(self, config: SpaceMouseConfig = SpaceMouseConfig(), limits: TargetLimits = TargetLimits()) -> None:
        super().__init__()
        self.config = config
        self.state = SpaceMouseState()
        self.integrator = VelocityIntegrator(config.mapping, limits)
        self._dev = None

    def connect(self) -> None:
        try:
            import hid
        except ImportError as exc:
            raise TeleopError("the SpaceMouse needs hidapi: pip install 'realsim[teleop]'") from exc
        found = [d for d in hid.enumerate() if d["vendor_id"] in SPACEMOUSE_VENDOR_IDS
                 and (not self.config.vendor_id or d["vendor_id"] == self.config.vendor_id)
                 and (not self.config.product_id or d["product_id"] == self.config.product_id)]
        if not found:
            raise TeleopError("no SpaceMouse found (3Dconnexion HID device); check the USB connection and udev rules")
        dev = hid.device()
        try:
            dev.open_path(found[0]["path"])
        except OSError as exc:
            raise TeleopError(f"cannot open the SpaceMouse at {found[0]['path']!r}: {exc} (udev permissions?)") from exc
        dev.set_nonblocking(True)
        self._dev = dev
        super().connect()

    def disconnect(self) -> None:
        if self._dev is not None:
            self._dev.close()
            self._dev = None
        super().disconnect()

    def reset(self) -> None:
        self.integrator.reset(None)

    def feed(self, report: bytes | list[int]) -> None:
        """Apply one HID report (from the device or a test)."""
        for button in parse_report(report, self.state):
            if button == 0:
                self.push_event(EpisodeEvent.NEXT)
            elif button == 1:
                self.push_event(EpisodeEvent.RERECORD)

    def axes(self) -> np.ndarray:
        """Deflection (forward, left) in [-1, 1]: world (+x, +y)."""
        tx, ty, _ = self.state.translation / self.config.full_scale
        return np.clip(np.array([-ty, -tx]), -1.0, 1.0)

    def get_action(self, obs: "Observation") -> np.ndarray:
        if self._dev is not None:
            for _ in range(64):  # bounded: drain what arrived since the last step
                report = self._dev.read(64)
                if not report:
                    break
                self.feed(report)
        axes = self.axes()
        if np.any(apply_dead_zone(axes, self.integrator.mapping.dead_zone)):
            self.note_input()
        return self.integrator.step(axes, self.config.period_s, np.asarray(obs.pusher_xy[0], dtype=np.float64))
