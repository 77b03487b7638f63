"""Franka Panda kinematics from an offline robot description: batched FK, Jacobians, differential IK.

Frames: ``base`` = ``world`` (the robot base, z up). ``flange`` = panda_link8 (Franka's flange frame,
before any tool). ``tool`` = the pusher tip, ``tool_offset_m`` along the flange's +z axis.
Units: metres, radians. Quaternions (w, x, y, z). All functions take a leading batch of any shape.

The kinematic chain (joint origins, axes, limits) is read from the Panda URDF shipped by the
``example-robot-data`` package (offline). The joint limits it carries are Franka's published values
(checked in ``tests/test_franka_kinematics.py``), and the forward kinematics are checked against an
independent modified-DH oracle.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_bridge.limits import FRANKA_PANDA_LIMITS, PANDA_HOME_Q_RAD

from .transforms import axis_angle_matrix, rpy_to_matrix

__all__ = [
    "FRANKA_Q_MIN",
    "FRANKA_Q_MAX",
    "FRANKA_DQ_MAX",
    "FRANKA_DDQ_MAX",
    "FRANKA_HOME_Q",
    "PandaKinematics",
    "IKResult",
    "DifferentialIKConfig",
    "panda_urdf_path",
]

#: Franka Panda published joint limits (one source: the robot bridge's safety layer): position [rad],
#: velocity [rad/s], acceleration [rad/s^2].
FRANKA_Q_MIN = np.array(FRANKA_PANDA_LIMITS.q_min_rad)
FRANKA_Q_MAX = np.array(FRANKA_PANDA_LIMITS.q_max_rad)
FRANKA_DQ_MAX = np.array(FRANKA_PANDA_LIMITS.dq_max_rad_s)
FRANKA_DDQ_MAX = np.array(FRANKA_PANDA_LIMITS.ddq_max_rad_s2)
#: Franka's usual "ready" pose [rad]: flange pointing down in front of the robot.
FRANKA_HOME_Q = np.array(PANDA_HOME_Q_RAD)


def panda_urdf_path() -> Path:
    """Path of the Panda URDF shipped by the ``example-robot-data`` package (offline, no download)."""
    from importlib import metadata

    rel = "cmeel.prefix/share/example-robot-data/robots/panda_description/urdf/panda.urdf"
    try:
        path = Path(metadata.distribution("example-robot-data").locate_file(rel))
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError("the 'example-robot-data' package is not installed") from exc
    if not path.is_file():
        raise FileNotFoundError(f"panda.urdf not found at {path}")
    return path


@dataclass(frozen=True)
class _Joint:
    name: str
    parent: str
    child: str
    T_parent_joint: np.ndarray  # [4, 4] joint origin in the parent link frame
    axis: np.ndarray  # [3] unit axis in the joint frame
    revolute: bool
    lower: float
    upper: float
    velocity: float


def _parse_chain(urdf: Path, base: str, tip: str) -> list[_Joint]:
    root = ET.parse(urdf).getroot()
    by_child: dict[str, _Joint] = {}
    for j in root.findall("joint"):
        origin = j.find("origin")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        rpy = np.array([float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()])
        T = np.eye(4)
        T[:3, :3] = rpy_to_matrix(rpy)
        T[:3, 3] = xyz
        axis_el = j.find("axis")
        axis = np.array([float(v) for v in axis_el.get("xyz").split()]) if axis_el is not None else np.array([0, 0, 1.0])
        limit = j.find("limit")
        joint = _Joint(
            name=j.get("name"),
            parent=j.find("parent").get("link"),
            child=j.find("child").get("link"),
            T_parent_joint=T,
            axis=axis / np.linalg.norm(axis),
            revolute=j.get("type") in ("revolute", "continuous"),
            lower=float(limit.get("lower", "nan")) if limit is not None else float("nan"),
            upper=float(limit.get("upper", "nan")) if limit is not None else float("nan"),
            velocity=float(limit.get("velocity", "nan")) if limit is not None else float("nan"),
        )
        by_child[joint.child] = joint
    chain: list[_Joint] = []
    link = tip
    while link != base:
        if link not in by_child:
            raise ValueError(f"{urdf}: no joint chain from {base} to {tip}")
        chain.append(by_child[link])
        link = by_child[link].parent
    return chain[::-1]


@dataclass(frozen=True)
class DifferentialIKConfig:
    """Damped-least-squares IK on the tool pose (position + orientation)."""

    iterations: int = 4
    damping: float = 0.05
    #: Weight of the orientation error [m/rad] against the position error.
    orientation_weight_m_per_rad: float = 0.3
    #: Gain of the null-space pull towards the rest posture (per iteration, unitless).
    nullspace_gain: float = 0.2
    #: Margin kept inside the published position limits [rad].
    joint_limit_margin_rad: float = 0.05
    #: A solution whose tool position misses the target by more than this is "unreachable" [m].
    position_tolerance_m: float = 0.002


@dataclass
class IKResult:
    """Batched IK outcome. ``q`` [..., 7] rad; ``position_error_m`` [...]; ``unreachable`` and
    ``limit_clamped`` [...] bool flags, never exceptions."""

    q: np.ndarray
    position_error_m: np.ndarray
    unreachable: np.ndarray
    limit_clamped: np.ndarray


@functools.lru_cache(maxsize=4)
def _load_chain(path: str) -> tuple[_Joint, ...]:
    return tuple(_parse_chain(Path(path), "panda_link0", "panda_link8"))


@dataclass
class PandaKinematics:
    """Batched kinematics of the Panda arm with a straight tool (the pusher) along the flange z axis.

    ``tool_offset_m``: distance from the flange to the tool point (pusher tip) along flange +z [m].
    """

    tool_offset_m: float = 0.0
    urdf_path: Path | None = None
    _joints: tuple[_Joint, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        path = Path(self.urdf_path) if self.urdf_path is not None else panda_urdf_path()
        self._joints = _load_chain(str(path))
        revolute = [j for j in self._joints if j.revolute]
        if len(revolute) != 7:
            raise ValueError(f"expected 7 revolute joints in the Panda chain, found {len(revolute)}")
        self.q_min = np.array([j.lower for j in revolute])
        self.q_max = np.array([j.upper for j in revolute])
        self.dq_max = np.array([j.velocity for j in revolute])
        self.link_names: tuple[str, ...] = ("panda_link0",) + tuple(j.child for j in self._joints)

    # ---------------------------------------------------------------- forward kinematics
    def link_poses(self, q: np.ndarray) -> np.ndarray:
        """Poses ``T_base_link`` [..., L, 4, 4] of panda_link0..panda_link8 (L = 9) for joints ``q`` [..., 7]."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1] != 7:
            raise ValueError(f"q must have 7 joint positions in its last axis, got shape {q.shape}")
        batch = q.shape[:-1]
        out = np.empty(batch + (len(self._joints) + 1, 4, 4))
        T = np.broadcast_to(np.eye(4), batch + (4, 4)).copy()
        out[..., 0, :, :] = T
        k = 0
        for i, j in enumerate(self._joints):
            T = T @ j.T_parent_joint
            if j.revolute:
                R = np.zeros(batch + (4, 4))
                R[..., :3, :3] = axis_angle_matrix(j.axis, q[..., k])
                R[..., 3, 3] = 1.0
                T = T @ R
                k += 1
            out[..., i + 1, :, :] = T
        return out

    def flange_pose(self, q: np.ndarray) -> np.ndarray:
        """``T_base_flange`` [..., 4, 4] for ``q`` [..., 7]."""
        return self.link_poses(q)[..., -1, :, :]

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """``T_base_tool`` [..., 4, 4]: the flange moved ``tool_offset_m`` along its +z axis."""
        T = self.flange_pose(q)
        T[..., :3, 3] += self.tool_offset_m * T[..., :3, 2]
        return T

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Geometric Jacobian of the tool point in the base frame.

        Returns ``(T_base_tool [..., 4, 4], J [..., 6, 7])``; rows 0-2 linear [m/rad], rows 3-5 angular.
        """
        links = self.link_poses(q)
        T_tool = links[..., -1, :, :].copy()
        T_tool[..., :3, 3] += self.tool_offset_m * T_tool[..., :3, 2]
        p_tool = T_tool[..., :3, 3]
        J = np.empty(np.shape(q)[:-1] + (6, 7))
        k = 0
        for i, j in enumerate(self._joints):
            if not j.revolute:
                continue
            T_joint = links[..., i + 1, :, :]  # child link frame == joint frame after rotation
            z = T_joint[..., :3, :3] @ j.axis
            p = T_joint[..., :3, 3]
            J[..., :3, k] = np.cross(z, p_tool - p)
            J[..., 3:, k] = z
            k += 1
        return T_tool, J

    # ---------------------------------------------------------------- inverse kinematics
    def solve_ik(
        self,
        target_position: np.ndarray,
        target_rotation: np.ndarray,
        q_init: np.ndarray,
        q_rest: np.ndarray | None = None,
        config: DifferentialIKConfig = DifferentialIKConfig(),
    ) -> IKResult:
        """Damped-least-squares IK for the tool pose, batched.

        ``target_position`` [..., 3] m and ``target_rotation`` [..., 3, 3] in the base frame; ``q_init``
        [..., 7] seeds the solve (use the current joints: the result stays on the same branch).
        Joint results are clamped inside the published limits minus a margin; a target that cannot be
        reached is flagged in ``unreachable``, never raised.
        """
        q = np.array(q_init, dtype=np.float64, copy=True)
        q_rest = FRANKA_HOME_Q if q_rest is None else np.asarray(q_rest, dtype=np.float64)
        lo = self.q_min + config.joint_limit_margin_rad
        hi = self.q_max - config.joint_limit_margin_rad
        w = config.orientation_weight_m_per_rad
        lam2 = config.damping**2
        clamped = np.zeros(q.shape[:-1], dtype=bool)
        for _ in range(config.iterations):
            T, J = self.jacobian(q)
            e_pos = target_position - T[..., :3, 3]
            R_err = target_rotation @ np.swapaxes(T[..., :3, :3], -1, -2)
            e_rot = 0.5 * np.stack(
                [R_err[..., 2, 1] - R_err[..., 1, 2], R_err[..., 0, 2] - R_err[..., 2, 0], R_err[..., 1, 0] - R_err[..., 0, 1]],
                axis=-1,
            )
            e = np.concatenate([e_pos, w * e_rot], axis=-1)
            Jw = J.copy()
            Jw[..., 3:, :] *= w
            JJt = Jw @ np.swapaxes(Jw, -1, -2) + lam2 * np.eye(6)
            J_pinv = np.swapaxes(Jw, -1, -2) @ np.linalg.inv(JJt)
            dq = (J_pinv @ e[..., None])[..., 0]
            N = np.eye(7) - J_pinv @ Jw
            dq += config.nullspace_gain * (N @ (q_rest - q)[..., None])[..., 0]
            q = q + dq
            clamped |= np.any((q < lo) | (q > hi), axis=-1)
            q = np.clip(q, lo, hi)
        err = np.linalg.norm(target_position - self.tool_pose(q)[..., :3, 3], axis=-1)
        return IKResult(q=q, position_error_m=err, unreachable=err > config.position_tolerance_m, limit_clamped=clamped)
