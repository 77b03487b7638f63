"""Rigid transforms as 4x4 homogeneous float64 matrices.

``T_a_b`` is the pose of frame b expressed in frame a: ``p_a = T_a_b @ p_b`` (homogeneous points).
Translations in metres.
"""

from __future__ import annotations

import numpy as np


def as_pose(T: object, name: str = "pose") -> np.ndarray:
    """Validate and return a 4x4 float64 rigid transform (a copy).

    Raises:
        ValueError: wrong shape, non-finite values, bottom row not ``[0, 0, 0, 1]``, or a rotation
            block that is not orthonormal with determinant +1 (tolerance 1e-6).
    """
    A = np.array(T, dtype=np.float64)
    if A.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} holds non-finite values")
    if not np.allclose(A[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError(f"{name} must have bottom row [0, 0, 0, 1], got {A[3].tolist()}")
    R = A[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise ValueError(f"{name} has a rotation block that is not a proper rotation")
    return A


def make_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 pose from a 3x3 rotation and a translation (3,) [m]."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """``T_b_a`` from ``T_a_b`` (exact for rigid transforms)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[:3, :3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ T[:3, 3]
    return out


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix from an axis-angle vector [rad] (Rodrigues)."""
    r = np.asarray(rotvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    Kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * Kx + (1.0 - np.cos(theta)) * (Kx @ Kx)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector [rad] of a rotation matrix (angle in [0, pi])."""
    R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    theta = float(np.arccos(cos))
    if theta < 1e-9:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if np.pi - theta < 1e-4:
        # Near pi: axis from the symmetric part.
        B = (R + np.eye(3)) / 2.0
        i = int(np.argmax(np.diag(B)))
        axis = B[:, i] / np.sqrt(max(B[i, i], 1e-12))
        return axis / np.linalg.norm(axis) * theta
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2.0 * np.sin(theta))
    return w * theta


def pose_from_rotvec(rotvec: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 pose from an axis-angle vector [rad] and a translation [m] (OpenCV's rvec/tvec)."""
    return make_pose(rotvec_to_matrix(rotvec), t)


def rotation_angle(R: np.ndarray) -> float:
    """Angle of a rotation matrix [rad], in [0, pi]."""
    R = np.asarray(R, dtype=np.float64)[:3, :3]
    return float(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)))


def rigid_pose_error(T_est: np.ndarray, T_ref: np.ndarray) -> tuple[float, float]:
    """``(translation error [m], rotation error [rad])`` between two poses of the same frames."""
    T_est = np.asarray(T_est, dtype=np.float64)
    T_ref = np.asarray(T_ref, dtype=np.float64)
    dt = float(np.linalg.norm(T_est[:3, 3] - T_ref[:3, 3]))
    dR = T_est[:3, :3].T @ T_ref[:3, :3]
    return dt, rotation_angle(dR)


def mean_pose(poses: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Average of nearby poses: mean translation, chordal L2 mean rotation (SVD projection)."""
    P = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if len(P) == 0:
        raise ValueError("mean_pose needs at least one pose")
    U, _, Vt = np.linalg.svd(P[:, :3, :3].sum(axis=0))
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    return make_pose(R, P[:, :3, 3].mean(axis=0))


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """``T_world_camera`` of an OpenCV camera at ``eye`` [m] looking at ``target`` [m].

    The camera's z axis points at the target and its y axis (image down) is as close as possible to
    ``-up``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    n = np.linalg.norm(z)
    if n < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    z /= n
    x = np.cross(z, np.asarray(up, dtype=np.float64))  # image right; then y = z x x points away from up
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to up")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_pose(np.stack([x, y, z], axis=1), eye)


__all__ = [
    "as_pose",
    "invert_pose",
    "look_at",
    "make_pose",
    "matrix_to_rotvec",
    "mean_pose",
    "rigid_pose_error",
    "pose_from_rotvec",
    "rotation_angle",
    "rotvec_to_matrix",
]
