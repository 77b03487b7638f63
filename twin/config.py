"""Configuration of the twin: typed, frozen dataclasses with units in their names (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .franka import DifferentialIKConfig
from .pusht import GoalConfig, TShape

__all__ = ["SpringGains", "PhysicsConfig", "RobotConfig", "WorkspaceConfig", "TwinConfig", "TShape", "GoalConfig", "DifferentialIKConfig"]


@dataclass(frozen=True)
class SpringGains:
    """Visual-force spring on a block (see ``twin.perception.correction``): a critically damped planar
    spring-damper towards a target pose, evaluated at every physics substep, with the twin's Coulomb
    friction compensated (tapered near the target so the block settles instead of chattering)."""

    frequency_hz: float = 5.0
    friction_compensation: float = 1.0
    friction_ref_m: float = 0.002
    friction_ref_rad: float = float(np.deg2rad(1.0))
    max_force_n: float = 10.0
    max_torque_nm: float = 1.0

    def __post_init__(self) -> None:
        for name in ("frequency_hz", "friction_ref_m", "friction_ref_rad", "max_force_n", "max_torque_nm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SpringGains.{name} must be > 0")
        if self.friction_compensation < 0:
            raise ValueError("SpringGains.friction_compensation must be >= 0")


@dataclass(frozen=True)
class PhysicsConfig:
    """Physics of the twin. Times in seconds, lengths in metres."""

    #: Physics substeps per control step.
    substeps: int = 10
    #: XPBD solver iterations per substep.
    solver_iterations: int = 2
    #: Run collision detection every this many substeps (contacts carry a gap so they see ahead).
    collide_every: int = 1
    #: Height of the table surface in the world (robot base) frame [m].
    table_height_m: float = 0.0
    table_friction: float = 0.5
    #: Pusher: a vertical cylinder whose tip is ``pusher_tip_height_m`` above the table [m].
    pusher_radius_m: float = 0.015
    pusher_tip_height_m: float = 0.005
    pusher_collision_length_m: float = 0.06
    #: Contact detection gap [m]: contacts closer than this are handed to the solver.
    contact_gap_m: float = 0.005

    def __post_init__(self) -> None:
        if self.substeps < 1 or self.solver_iterations < 1 or self.collide_every < 1:
            raise ValueError("substeps, solver_iterations and collide_every must be >= 1")
        for name in ("pusher_radius_m", "pusher_collision_length_m", "contact_gap_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PhysicsConfig.{name} must be > 0")
        if self.pusher_tip_height_m < 0 or self.table_friction < 0:
            raise ValueError("pusher_tip_height_m and table_friction must be >= 0")


@dataclass(frozen=True)
class RobotConfig:
    """The simulated Panda with a vertical pusher rod on its flange."""

    #: Flange to pusher tip along the flange z axis [m].
    pusher_length_m: float = 0.15
    #: Pusher tip (x, y) at the start of every episode [m], world frame.
    start_xy_m: tuple[float, float] = (0.40, 0.0)
    #: Fraction of Franka's published joint velocity limits the twin may use, in (0, 1].
    velocity_limit_scale: float = 0.5
    #: Cartesian speed cap of the pusher target [m/s].
    max_pusher_speed_m_s: float = 0.3
    #: Cartesian acceleration cap of the pusher [m/s^2] (it also brakes to stop at its target): the
    #: twin's arm then moves along paths the real arm can follow without cutting corners.
    max_pusher_accel_m_s2: float = 1.0
    ik: DifferentialIKConfig = field(default_factory=lambda: DifferentialIKConfig(iterations=3, damping=0.01, nullspace_gain=0.1))

    def __post_init__(self) -> None:
        if not 0 < self.velocity_limit_scale <= 1:
            raise ValueError(f"velocity_limit_scale must be in (0, 1], got {self.velocity_limit_scale}")
        if not self.pusher_length_m > 0 or not self.max_pusher_speed_m_s > 0 or not self.max_pusher_accel_m_s2 > 0:
            raise ValueError("pusher_length_m, max_pusher_speed_m_s and max_pusher_accel_m_s2 must be > 0")


@dataclass(frozen=True)
class WorkspaceConfig:
    """Rectangle of the table the pusher may reach, world frame [m]."""

    x_range_m: tuple[float, float] = (0.36, 0.72)
    y_range_m: tuple[float, float] = (-0.30, 0.30)
    #: Blocks start with their centre this far inside the workspace edges [m], and a nudge ('a person',
    #: ``sim_workspace.world``) leaves it there: a block whose centre is at the edge sticks out of the pusher's
    #: reach, and no push can bring it back.
    block_margin_m: float = 0.08
    #: Blocks start at least this far from the pusher [m] (gap between pusher and T outline).
    start_clearance_m: float = 0.03

    def __post_init__(self) -> None:
        if not (self.x_range_m[0] < self.x_range_m[1] and self.y_range_m[0] < self.y_range_m[1]):
            raise ValueError("workspace ranges must be (low, high) with low < high")

    @property
    def low(self) -> np.ndarray:
        return np.array([self.x_range_m[0], self.y_range_m[0]])

    @property
    def high(self) -> np.ndarray:
        return np.array([self.x_range_m[1], self.y_range_m[1]])

    def clip(self, xy: np.ndarray) -> np.ndarray:
        """Points ``xy`` [..., 2] [m] clipped into the workspace (as the robot's targets are)."""
        return np.clip(xy, self.low, self.high)

    def distance_outside(self, xy: np.ndarray) -> np.ndarray:
        """How far [m] each point of ``xy`` [..., 2] lies outside the workspace along the axis where it is
        furthest out, shape [...]: > 0 outside, <= 0 inside (minus its distance to the nearest edge)."""
        return np.max(np.maximum(self.low - xy, xy - self.high), axis=-1)

    def clip_block_centres(self, xy: np.ndarray) -> np.ndarray:
        """Block centres ``xy`` [..., 2] [m] clipped to the region blocks start in (``block_margin_m``
        inside the edges)."""
        return np.clip(xy, self.low + self.block_margin_m, self.high - self.block_margin_m)


@dataclass(frozen=True)
class TwinConfig:
    """Everything that defines the twin's PushT workspace."""

    num_worlds: int = 1
    control_hz: float = 10.0
    max_episode_steps: int = 300
    #: Warp device, resolved at the edge ("cpu", "cuda:0"); see ``twin.resolve_device``.
    device: str = "cpu"
    block: TShape = field(default_factory=TShape)
    goal: GoalConfig = field(default_factory=lambda: GoalConfig(x_m=0.54, y_m=0.0))
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)

    def __post_init__(self) -> None:
        if self.num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {self.num_worlds}")
        if not self.control_hz > 0 or self.max_episode_steps < 1:
            raise ValueError("control_hz must be > 0 and max_episode_steps >= 1")


