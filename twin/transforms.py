"""Small batched rigid-transform helpers (numpy). Quaternions are (w, x, y, z) everywhere in realsim;
Warp's xyzw order is converted only in ``twin._physics`` (see ``quat_wxyz_to_xyzw``)."""

from __future__ import annotations

import numpy as np


def rpy_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw [rad] -> rotation matrix R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about a fixed unit ``axis`` [3] by ``angle`` [...] rad -> [..., 3, 3]."""
    angle = np.asarray(angle, dtype=np.float64)
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    R = np.empty(angle.shape + (3, 3))
    R[..., 0, 0] = c + x * x * C
    R[..., 0, 1] = x * y * C - z * s
    R[..., 0, 2] = x * z * C + y * s
    R[..., 1, 0] = y * x * C + z * s
    R[..., 1, 1] = c + y * y * C
    R[..., 1, 2] = y * z * C - x * s
    R[..., 2, 0] = z * x * C - y * s
    R[..., 2, 1] = z * y * C + x * s
    R[..., 2, 2] = c + z * z * C
    return R


def matrix_to_quat_wxyz(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] as (w, x, y, z), w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    q = np.stack(
        [
            np.sqrt(np.maximum(0.0, 1.0 + m00 + m11 + m22)),
            np.sqrt(np.maximum(0.0, 1.0 + m00 - m11 - m22)),
            np.sqrt(np.maximum(0.0, 1.0 - m00 + m11 - m22)),
            np.sqrt(np.maximum(0.0, 1.0 - m00 - m11 + m22)),
        ],
        axis=-1,
    ) * 0.5
    q[..., 1] = np.copysign(q[..., 1], R[..., 2, 1] - R[..., 1, 2])
    q[..., 2] = np.copysign(q[..., 2], R[..., 0, 2] - R[..., 2, 0])
    q[..., 3] = np.copysign(q[..., 3], R[..., 1, 0] - R[..., 0, 1])
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (w, x, y, z) -> rotation matrices [..., 3, 3]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def yaw_to_quat_wxyz(yaw: np.ndarray) -> np.ndarray:
    """Rotations about world z by ``yaw`` [...] rad -> quaternions [..., 4] (w, x, y, z)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.zeros(yaw.shape + (4,))
    q[..., 0] = np.cos(yaw / 2)
    q[..., 3] = np.sin(yaw / 2)
    return q


def quat_wxyz_to_yaw(q: np.ndarray) -> np.ndarray:
    """Heading about world z [rad] in (-pi, pi] of quaternions [..., 4] (w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) -> (x, y, z, w): the one place realsim converts to Warp's quaternion order."""
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """(x, y, z, w) Warp order -> (w, x, y, z)."""
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles [rad] wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
