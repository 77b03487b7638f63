"""Joint limits of the arm and the limits the safety layer enforces: a leaf module (numpy only).

Joint vectors have shape (7,) in Franka joint order (joint 1 = base): positions [rad], velocities
[rad/s], accelerations [rad/s^2], jerks [rad/s^3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._errors import SafetyConfigError

__all__ = ["N_JOINTS", "JointLimits", "FRANKA_PANDA_LIMITS", "PANDA_HOME_Q_RAD", "SafetyConfig", "EffectiveLimits",
           "effective_limits"]

N_JOINTS = 7


@dataclass(frozen=True)
class JointLimits:
    """Hardware joint limits (unscaled). All tuples have shape (7,)."""

    q_min_rad: tuple[float, ...]
    q_max_rad: tuple[float, ...]
    dq_max_rad_s: tuple[float, ...]
    ddq_max_rad_s2: tuple[float, ...]
    dddq_max_rad_s3: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("q_min_rad", "q_max_rad", "dq_max_rad_s", "ddq_max_rad_s2", "dddq_max_rad_s3"):
            v = getattr(self, name)
            if len(v) != N_JOINTS or not all(math.isfinite(x) for x in v):
                raise SafetyConfigError(f"{name} must hold {N_JOINTS} finite numbers")
        if any(lo >= hi for lo, hi in zip(self.q_min_rad, self.q_max_rad)):
            raise SafetyConfigError("q_min_rad must be below q_max_rad for every joint")
        if any(x <= 0 for x in self.dq_max_rad_s + self.ddq_max_rad_s2 + self.dddq_max_rad_s3):
            raise SafetyConfigError("velocity, acceleration and jerk limits must be positive")


FRANKA_PANDA_LIMITS = JointLimits(
    # Franka Panda joint-space limits as published by Franka Emika (robot and interface specifications;
    # the same values as libfranka's include/franka/rate_limiting.h for the Panda: kMaxJointVelocity,
    # kMaxJointAcceleration, kMaxJointJerk).
    q_min_rad=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    q_max_rad=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    dq_max_rad_s=(2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100),
    ddq_max_rad_s2=(15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0),
    dddq_max_rad_s3=(7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0),
)


PANDA_HOME_Q_RAD = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)
"""The usual Panda 'ready' pose [rad]."""


@dataclass(frozen=True)
class SafetyConfig:
    """Settings of the safety layer. Limits are the hardware limits scaled by ``limit_factor``."""

    limit_factor: float = 0.5  # scale of velocity, acceleration and jerk limits, in (0, 1]
    position_margin_rad: float = 0.05  # kept clear of each hardware position limit [rad]
    max_jump_rad: float = 0.1  # largest per-joint distance of an accepted target from the reference [rad]
    resume_tolerance_rad: float = 0.05  # a target leaving HOLD must be this close to the held pose [rad]
    max_message_age_s: float = 0.05  # older targets (after clock-offset correction) are stale [s]
    max_future_s: float = 0.01  # targets claiming to be from further in the future are refused [s]
    watchdog_timeout_s: float = 0.1  # no valid target for this long -> HOLD [s]
    max_tick_dt_s: float = 0.002  # largest time step one tick may integrate [s]
    max_interp_period_s: float = 0.1  # longest interval a target is spread over [s]
    #: A target that arrives late finds the reference going on at the last segment's velocity for at
    #: most this long (then it holds), so a late delivery is no stall-then-sprint in the motion [s].
    max_extrapolation_s: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.limit_factor <= 1.0:
            raise SafetyConfigError(f"limit_factor={self.limit_factor} must be in (0, 1]")
        for name in ("position_margin_rad", "max_jump_rad", "resume_tolerance_rad", "max_message_age_s",
                     "max_future_s", "watchdog_timeout_s", "max_tick_dt_s", "max_interp_period_s",
                     "max_extrapolation_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise SafetyConfigError(f"{name}={v} must be a finite non-negative number")
        if self.watchdog_timeout_s <= 0 or self.max_tick_dt_s <= 0 or self.max_jump_rad <= 0:
            raise SafetyConfigError("watchdog_timeout_s, max_tick_dt_s and max_jump_rad must be positive")
        if self.max_tick_dt_s > 0.01:
            raise SafetyConfigError(f"max_tick_dt_s={self.max_tick_dt_s} must be at most 0.01 s")


@dataclass(frozen=True)
class EffectiveLimits:
    """Limits as enforced: positions shrunk by the margin, rates scaled by the factor. Shape (7,) each."""

    q_lo_rad: np.ndarray
    q_hi_rad: np.ndarray
    dq_max_rad_s: np.ndarray
    ddq_max_rad_s2: np.ndarray
    dddq_max_rad_s3: np.ndarray
    config: SafetyConfig = field(repr=False)

    def __post_init__(self) -> None:
        # Plain-float copies for the per-tick scalar loops.
        object.__setattr__(self, "_q_lo", tuple(self.q_lo_rad.tolist()))
        object.__setattr__(self, "_q_hi", tuple(self.q_hi_rad.tolist()))
        object.__setattr__(self, "_dq_max", tuple(self.dq_max_rad_s.tolist()))
        object.__setattr__(self, "_ddq_max", tuple(self.ddq_max_rad_s2.tolist()))
        object.__setattr__(self, "_dddq_max", tuple(self.dddq_max_rad_s3.tolist()))

    def contains(self, q_rad: np.ndarray) -> bool:
        return bool(np.all(q_rad >= self.q_lo_rad) and np.all(q_rad <= self.q_hi_rad))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def effective_limits(limits: JointLimits = FRANKA_PANDA_LIMITS, config: SafetyConfig = SafetyConfig()) -> EffectiveLimits:
    """Combine hardware limits and safety settings into the limits the server enforces."""
    lo = np.asarray(limits.q_min_rad, dtype=float) + config.position_margin_rad
    hi = np.asarray(limits.q_max_rad, dtype=float) - config.position_margin_rad
    if np.any(lo >= hi):
        raise SafetyConfigError("position_margin_rad leaves no room between the joint limits")
    f = config.limit_factor
    return EffectiveLimits(_frozen(lo), _frozen(hi), _frozen(np.asarray(limits.dq_max_rad_s, dtype=float) * f),
                           _frozen(np.asarray(limits.ddq_max_rad_s2, dtype=float) * f),
                           _frozen(np.asarray(limits.dddq_max_rad_s3, dtype=float) * f), config)
