"""Device axes to pusher targets: dead zones, speed scaling and integration into a bounded target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import TargetLimits

__all__ = ["VelocityMapping", "apply_dead_zone", "VelocityIntegrator"]


def apply_dead_zone(axes: np.ndarray, dead_zone: float) -> np.ndarray:
    """Radial dead zone on a 2-axis deflection in [-1, 1]^2: magnitudes below ``dead_zone`` give 0, the
    rest is rescaled to start from 0 at the dead zone and reach 1 at full deflection (no jump)."""
    if not 0 <= dead_zone < 1:
        raise ValueError(f"dead_zone must be in [0, 1), got {dead_zone}")
    v = np.clip(np.asarray(axes, dtype=np.float64).reshape(2), -1.0, 1.0)
    r = float(np.linalg.norm(v))
    if r <= dead_zone:
        return np.zeros(2)
    scale = min(1.0, (r - dead_zone) / (1.0 - dead_zone)) / r
    return v * scale


@dataclass(frozen=True)
class VelocityMapping:
    """Deflection -> target velocity. Device axes are (forward, left) = world (+x, +y)."""

    #: Target speed at full deflection and ``speed_scale`` 1 [m/s].
    max_speed_m_s: float = 0.15
    #: Deflections below this fraction do nothing.
    dead_zone: float = 0.1
    #: Initial speed scale, and its bounds and step for the faster/slower controls.
    speed_scale: float = 1.0
    min_speed_scale: float = 0.125
    max_speed_scale: float = 2.0
    speed_scale_step: float = 1.25

    def __post_init__(self) -> None:
        if not self.max_speed_m_s > 0:
            raise ValueError("max_speed_m_s must be > 0")
        if not 0 <= self.dead_zone < 1:
            raise ValueError("dead_zone must be in [0, 1)")
        if not 0 < self.min_speed_scale <= self.speed_scale <= self.max_speed_scale:
            raise ValueError("need 0 < min_speed_scale <= speed_scale <= max_speed_scale")
        if not self.speed_scale_step > 1:
            raise ValueError("speed_scale_step must be > 1")


class VelocityIntegrator:
    """Integrates deflections into a pusher target kept inside ``limits``."""

    def __init__(self, mapping: VelocityMapping, limits: TargetLimits) -> None:
        self.mapping = mapping
        self.limits = limits
        self.speed_scale = mapping.speed_scale
        self.target: np.ndarray | None = None

    def reset(self, xy: np.ndarray | None = None) -> None:
        self.target = None if xy is None else self.limits.clip(np.asarray(xy, dtype=np.float64))

    def faster(self) -> float:
        m = self.mapping
        self.speed_scale = min(m.max_speed_scale, self.speed_scale * m.speed_scale_step)
        return self.speed_scale

    def slower(self) -> float:
        m = self.mapping
        self.speed_scale = max(m.min_speed_scale, self.speed_scale / m.speed_scale_step)
        return self.speed_scale

    def step(self, axes: np.ndarray, dt_s: float, start_xy: np.ndarray) -> np.ndarray:
        """Move the target by deflection ``axes`` [2] in [-1, 1] held for ``dt_s`` [s]; the target
        starts at ``start_xy`` [m] when unset. Returns the new target [2] [m]."""
        if self.target is None:
            self.reset(start_xy)
        v = apply_dead_zone(axes, self.mapping.dead_zone) * self.mapping.max_speed_m_s * self.speed_scale
        self.target = self.limits.clip(self.target + v * dt_s)
        return self.target.copy()
