"""PushT task geometry and scoring: the T block's shape, its keypoints, the goal, and coverage.

The T has gym-pusht's shape scaled to metres: a bar (default 0.20 m x 0.05 m) with a stem
(0.05 m x 0.15 m) below its middle, 0.04 m thick. The **block frame** has its origin at the T's centre
of mass (uniform density), x along the bar, +y from the stem towards the bar, z up. A block pose is
(x, y, yaw) in the world frame: metres and radians, the block resting on the table.

Success follows gym-pusht: the block covers at least 95 % of the goal region (the T at the goal pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .transforms import wrap_angle

__all__ = ["TShape", "GoalConfig", "t_outline", "block_keypoints", "coverage", "planar_pose_error", "pusher_path_touches",
           "pusher_step_touches"]


@dataclass(frozen=True)
class TShape:
    """Dimensions of the T block [m] and its physical properties."""

    bar_length_m: float = 0.20
    bar_width_m: float = 0.05
    stem_width_m: float = 0.05
    stem_length_m: float = 0.15
    thickness_m: float = 0.04
    mass_kg: float = 0.25
    friction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("bar_length_m", "bar_width_m", "stem_width_m", "stem_length_m", "thickness_m", "mass_kg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TShape.{name} must be > 0, got {getattr(self, name)}")
        if self.stem_width_m > self.bar_length_m:
            raise ValueError("TShape.stem_width_m must not exceed bar_length_m")
        if self.friction < 0:
            raise ValueError(f"TShape.friction must be >= 0, got {self.friction}")

    @property
    def bar_center_y_m(self) -> float:
        """y of the bar's centre in the block frame (the frame's origin is the centre of mass)."""
        return self._stem_offset() * self._stem_area() / self._area()

    @property
    def stem_center_y_m(self) -> float:
        """y of the stem's centre in the block frame."""
        return self.bar_center_y_m - self._stem_offset()

    @property
    def radius_m(self) -> float:
        """Radius of the smallest origin-centred disc holding the T (for workspace margins)."""
        return float(np.max(np.linalg.norm(t_outline(self), axis=1)))

    @property
    def inertia_zz_kg_m2(self) -> float:
        """Moment of inertia about the vertical axis through the centre of mass [kg m^2]."""
        rho = self.mass_kg / self._area()
        m_bar = rho * self.bar_length_m * self.bar_width_m
        m_stem = rho * self._stem_area()
        return (m_bar * ((self.bar_length_m**2 + self.bar_width_m**2) / 12 + self.bar_center_y_m**2)
                + m_stem * ((self.stem_width_m**2 + self.stem_length_m**2) / 12 + self.stem_center_y_m**2))

    def _stem_offset(self) -> float:
        return 0.5 * (self.bar_width_m + self.stem_length_m)

    def _area(self) -> float:
        return self.bar_length_m * self.bar_width_m + self._stem_area()

    def _stem_area(self) -> float:
        return self.stem_width_m * self.stem_length_m


@dataclass(frozen=True)
class GoalConfig:
    """Goal pose of the block in the world frame: x, y [m], yaw [rad]. gym-pusht's goal is the
    workspace centre at 45 degrees."""

    x_m: float = 0.5
    y_m: float = 0.0
    yaw_rad: float = float(np.pi / 4)
    success_coverage: float = 0.95

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.x_m, self.y_m, self.yaw_rad])


def t_outline(shape: TShape) -> np.ndarray:
    """The T's outline [8, 2] in the block frame [m], counter-clockwise from the bar's top-left corner."""
    L, W, w, l = shape.bar_length_m, shape.bar_width_m, shape.stem_width_m, shape.stem_length_m
    yb = shape.bar_center_y_m
    top, bottom, stem_end = yb + W / 2, yb - W / 2, yb - W / 2 - l
    return np.array(
        [
            [-L / 2, top],
            [-L / 2, bottom],
            [-w / 2, bottom],
            [-w / 2, stem_end],
            [w / 2, stem_end],
            [w / 2, bottom],
            [L / 2, bottom],
            [L / 2, top],
        ]
    )


def block_keypoints(shape: TShape, poses: np.ndarray) -> np.ndarray:
    """World-frame outline keypoints [N, 8, 2] of blocks at ``poses`` [N, 3] (x, y, yaw)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
    Rt = np.empty((len(poses), 2, 2))  # R^T per pose: the outline's rows times R^T are R times its points
    Rt[:, 0, 0], Rt[:, 0, 1], Rt[:, 1, 0], Rt[:, 1, 1] = c, s, -s, c
    return t_outline(shape) @ Rt + poses[:, None, :2]


def coverage(shape: TShape, poses: np.ndarray, goal_pose: np.ndarray) -> np.ndarray:
    """Fraction [N] of the goal region (the T at ``goal_pose`` (x, y, yaw)) covered by the blocks at
    ``poses`` [N, 3] (gym-pusht's rule: intersection area / goal area)."""
    blocks = shapely.polygons(block_keypoints(shape, poses))
    goal = shapely.polygons(block_keypoints(shape, np.asarray(goal_pose)[None])[0])
    return np.clip(shapely.area(shapely.intersection(blocks, goal)) / shapely.area(goal), 0.0, 1.0)


def planar_pose_error(poses: np.ndarray, goal_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position error [m] and absolute yaw error [rad] in [0, pi] of ``poses`` [N, 3] to the goal."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    pos = np.linalg.norm(poses[:, :2] - np.asarray(goal_pose)[:2], axis=1)
    dyaw = wrap_angle(poses[:, 2] - goal_pose[2])
    return pos, np.abs(dyaw)


def pusher_path_touches(shape: TShape, block_pose: np.ndarray, p0: np.ndarray, p1: np.ndarray, reach_m: float) -> bool:
    """True when a pusher's centre moving straight from ``p0`` to ``p1`` (x, y) [m] comes closer than
    ``reach_m`` (its radius plus a margin) [m] to the block at ``block_pose`` (x, y, yaw)."""
    outline = shapely.Polygon(block_keypoints(shape, np.asarray(block_pose)[None])[0])
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    path = shapely.LineString([p0, p1]) if np.any(p0 != p1) else shapely.Point(p0)
    return bool(outline.distance(path) < reach_m)


def pusher_step_touches(shape: TShape, pose_before: np.ndarray, pose_after: np.ndarray, p0: np.ndarray, p1: np.ndarray,
                        reach_m: float) -> bool:
    """True when a control step's pusher path from ``p0`` to ``p1`` [m] touches the block where it was
    before the step or where it is after it (``pusher_path_touches`` with both poses): how the live
    loop decides that a step pushed the block."""
    return (pusher_path_touches(shape, pose_before, p0, p1, reach_m)
            or pusher_path_touches(shape, pose_after, p0, p1, reach_m))
