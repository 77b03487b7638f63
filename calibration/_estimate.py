"""Intrinsics and extrinsics from ChArUco board views."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._board import BoardDetection
from ._errors import InsufficientDataError
from ._intrinsics import CameraIntrinsics
from ._pose import as_pose, invert_pose, matrix_to_rotvec, pose_from_rotvec


def reprojection_residuals(
    detection: BoardDetection, intrinsics: CameraIntrinsics, T_camera_board: np.ndarray
) -> np.ndarray:
    """Per-corner reprojection error vectors [px], float64 (N, 2): projected minus detected."""
    import cv2

    T = np.asarray(T_camera_board, dtype=np.float64)
    rvec = matrix_to_rotvec(T[:3, :3])
    proj, _ = cv2.projectPoints(detection.object_points, rvec, T[:3, 3], intrinsics.K, intrinsics.opencv_distortion())
    return proj.reshape(-1, 2) - detection.image_points


def _rms(res: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(np.square(res), axis=-1)))) if res.size else float("nan")


def estimate_board_pose(detection: BoardDetection, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, float]:
    """Pose of the board in the camera, ``(T_camera_board 4x4 [m], reprojection RMS [px])``.

    Planar PnP (IPPE) refined by Levenberg-Marquardt on the reprojection error.
    """
    import cv2

    if len(detection) < 4:
        raise InsufficientDataError(f"board pose needs at least 4 corners, got {len(detection)}")
    obj = detection.object_points.astype(np.float64)
    img = detection.image_points.astype(np.float64)
    dist = intrinsics.opencv_distortion()
    ok, rvec, tvec = cv2.solvePnP(obj, img, intrinsics.K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise InsufficientDataError("solvePnP failed on the detected board corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, intrinsics.K, dist, rvec, tvec)
    T = pose_from_rotvec(rvec.ravel(), tvec.ravel())
    return T, _rms(reprojection_residuals(detection, intrinsics, T))


@dataclasses.dataclass(frozen=True)
class ExtrinsicsResult:
    """Camera pose from views of a board at a known world pose.

    Attributes:
        T_world_camera: camera pose in the world frame, 4x4 float64 [m] (OpenCV camera axes).
        T_camera_board: board pose in the camera frame, 4x4 float64 [m].
        reprojection_rms_px: RMS corner reprojection error over all views [px].
        n_views: images used.
        n_corners: corner observations used.
        view_spread_mm: largest distance between per-view board positions and the joint estimate [mm]
            (large when the camera or board moved between views).
    """

    T_world_camera: np.ndarray
    T_camera_board: np.ndarray
    reprojection_rms_px: float
    n_views: int
    n_corners: int
    view_spread_mm: float


def estimate_extrinsics(
    detections: Sequence[BoardDetection],
    intrinsics: CameraIntrinsics,
    T_world_board: np.ndarray,
) -> ExtrinsicsResult:
    """``T_world_camera`` of a static camera from one or more views of a static board.

    The board lies at the known pose ``T_world_board`` (placed at a measured spot on the table, or
    tied to the robot: ``T_world_flange @ T_flange_board``). All views' corners are solved jointly.

    Raises:
        InsufficientDataError: no views given.
    """
    import cv2

    T_world_board = as_pose(T_world_board, "T_world_board")
    dets = list(detections)
    if not dets:
        raise InsufficientDataError("extrinsics need at least one view with the board detected")
    per_view = [estimate_board_pose(d, intrinsics)[0] for d in dets]
    obj = np.concatenate([d.object_points for d in dets])
    img = np.concatenate([d.image_points for d in dets])
    dist = intrinsics.opencv_distortion()
    T0 = per_view[0]
    rvec, tvec = cv2.solvePnPRefineLM(
        obj, img, intrinsics.K, dist, matrix_to_rotvec(T0[:3, :3]).reshape(3, 1), T0[:3, 3].reshape(3, 1).copy()
    )
    T_cb = pose_from_rotvec(rvec.ravel(), tvec.ravel())
    res = np.concatenate([reprojection_residuals(d, intrinsics, T_cb) for d in dets])
    spread = max(float(np.linalg.norm(T[:3, 3] - T_cb[:3, 3])) for T in per_view) * 1000.0
    T_wc = T_world_board @ invert_pose(T_cb)
    return ExtrinsicsResult(T_wc, T_cb, _rms(res), len(dets), int(obj.shape[0]), spread)


@dataclasses.dataclass(frozen=True)
class IntrinsicsResult:
    """Intrinsics estimated from board images.

    Attributes:
        intrinsics: the estimate (``distortion_model="opencv"``, 5 coefficients).
        reprojection_rms_px: RMS reprojection error over all views [px].
        n_views: images used.
        T_camera_board: per-view board poses, 4x4 [m].
    """

    intrinsics: CameraIntrinsics
    reprojection_rms_px: float
    n_views: int
    T_camera_board: tuple[np.ndarray, ...]


def estimate_intrinsics(
    detections: Sequence[BoardDetection],
    min_views: int = 5,
    fix_distortion: bool = False,
) -> IntrinsicsResult:
    """Camera matrix and distortion from several views of the board at varied tilts.

    Raises:
        InsufficientDataError: fewer than ``min_views`` views, or images of different sizes.
    """
    import cv2

    dets = [d for d in detections if len(d) >= 6]
    if len(dets) < max(3, min_views):
        raise InsufficientDataError(
            f"intrinsics need at least {max(3, min_views)} views with the board detected (>= 6 corners), got {len(dets)}"
        )
    sizes = {d.image_size for d in dets}
    if len(sizes) != 1:
        raise InsufficientDataError(f"all views must have the same image size, got {sorted(sizes)}")
    (w, h) = sizes.pop()
    flags = 0
    if fix_distortion:
        flags |= cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST
    obj = [d.object_points.astype(np.float32) for d in dets]
    img = [d.image_points.astype(np.float32) for d in dets]
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, (w, h), None, None, flags=flags)
    intr = CameraIntrinsics.from_K(K, w, h, "opencv", tuple(np.ravel(dist)[:5]))
    poses = tuple(pose_from_rotvec(r.ravel(), t.ravel()) for r, t in zip(rvecs, tvecs, strict=False))
    return IntrinsicsResult(intr, float(rms), len(dets), poses)


__all__ = [
    "ExtrinsicsResult",
    "IntrinsicsResult",
    "estimate_board_pose",
    "estimate_extrinsics",
    "estimate_intrinsics",
    "reprojection_residuals",
]
