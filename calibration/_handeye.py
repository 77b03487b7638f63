"""Hand-eye calibration from robot flange poses and board views.

Two set-ups, in the world (= robot base) frame:

* ``eye_to_hand``: the camera is static and the board is held by the robot. Unknowns:
  ``T_world_camera`` and ``T_flange_board``; per view ``T_world_flange_i @ T_flange_board =
  T_world_camera @ T_camera_board_i``.
* ``eye_in_hand``: the camera is on the flange and the board is static. Unknowns:
  ``T_flange_camera`` and ``T_world_board``; per view ``T_world_flange_i @ T_flange_camera @
  T_camera_board_i = T_world_board``.

The closed-form solution (``cv2.calibrateHandEye``) is refined by minimising the corner reprojection
error of all views jointly over both unknowns (when detections are given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._board import BoardDetection
from ._errors import DegenerateMotionError, InsufficientDataError
from ._estimate import estimate_board_pose
from ._intrinsics import CameraIntrinsics
from ._pose import as_pose, invert_pose, make_pose, matrix_to_rotvec, mean_pose, rigid_pose_error, pose_from_rotvec

HAND_EYE_MODES = ("eye_to_hand", "eye_in_hand")
_METHODS = {"tsai": "CALIB_HAND_EYE_TSAI", "park": "CALIB_HAND_EYE_PARK", "horaud": "CALIB_HAND_EYE_HORAUD",
            "andreff": "CALIB_HAND_EYE_ANDREFF", "daniilidis": "CALIB_HAND_EYE_DANIILIDIS"}


@dataclasses.dataclass(frozen=True)
class HandEyeResult:
    """Result of :func:`calibrate_hand_eye`.

    Attributes:
        mode: ``"eye_to_hand"`` or ``"eye_in_hand"``.
        T_world_camera: camera pose in the world [m] (``eye_to_hand``), else None.
        T_flange_board: board pose on the flange [m] (``eye_to_hand``), else None.
        T_flange_camera: camera pose on the flange [m] (``eye_in_hand``), else None.
        T_world_board: board pose in the world [m] (``eye_in_hand``), else None.
        reprojection_rms_px: RMS corner reprojection error of the joint model over all views [px]
            (NaN without detections).
        consistency_pos_mm: RMS over views of the distance between the per-view estimate of the
            second unknown (board on flange, or board in world) and its mean [mm].
        consistency_rot_deg: the same for rotation [deg].
        n_poses: views used.
        refined: whether the reprojection refinement ran.
    """

    mode: str
    T_world_camera: np.ndarray | None
    T_flange_board: np.ndarray | None
    T_flange_camera: np.ndarray | None
    T_world_board: np.ndarray | None
    reprojection_rms_px: float
    consistency_pos_mm: float
    consistency_rot_deg: float
    n_poses: int
    refined: bool

    def residuals(self) -> dict[str, float]:
        """Quality figures for the calibration file."""
        out = {
            "handeye_pos_consistency_mm": self.consistency_pos_mm,
            "handeye_rot_consistency_deg": self.consistency_rot_deg,
            "n_poses": float(self.n_poses),
        }
        if np.isfinite(self.reprojection_rms_px):
            out["reprojection_rms_px"] = self.reprojection_rms_px
        return out


def check_motion_diversity(T_world_flange: Sequence[np.ndarray], min_axis_spread_deg: float = 5.0) -> None:
    """Raise :class:`DegenerateMotionError` unless the flange rotates about two or more distinct axes.

    Hand-eye calibration is unobservable from pure translations or from rotations about one axis. The
    relative rotations to the first pose (axis-angle vectors [deg]) must span at least two
    directions: the second singular value of their stack, per pose, must exceed
    ``min_axis_spread_deg``.
    """
    T0_inv = invert_pose(T_world_flange[0])
    vecs = np.array([np.degrees(matrix_to_rotvec((T0_inv @ T)[:3, :3])) for T in T_world_flange[1:]])
    if len(vecs) == 0:
        raise InsufficientDataError("hand-eye calibration needs more than one pose")
    sv = np.linalg.svd(vecs, compute_uv=False) / np.sqrt(len(vecs))
    largest = float(np.max(np.linalg.norm(vecs, axis=1)))
    if sv[0] < min_axis_spread_deg:
        raise DegenerateMotionError(
            f"the flange barely rotates between poses (largest relative rotation {largest:.2f} deg); "
            "hand-eye calibration needs rotations of 15-45 deg about at least two different axes"
        )
    if len(sv) < 2 or sv[1] < min_axis_spread_deg:
        raise DegenerateMotionError(
            "the flange rotates about a single axis only (second axis spread "
            f"{(sv[1] if len(sv) > 1 else 0.0):.2f} deg < {min_axis_spread_deg} deg); hand-eye calibration "
            "needs rotations about at least two different axes"
        )


def _project(obj: np.ndarray, T_cam_obj: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    import cv2

    proj, _ = cv2.projectPoints(obj, matrix_to_rotvec(T_cam_obj[:3, :3]), T_cam_obj[:3, 3], K, dist)
    return proj.reshape(-1, 2)


def _board_in_camera(mode: str, X: np.ndarray, Y: np.ndarray, T_wf: np.ndarray) -> np.ndarray:
    if mode == "eye_to_hand":  # X = T_world_camera, Y = T_flange_board
        return invert_pose(X) @ T_wf @ Y
    return invert_pose(X) @ invert_pose(T_wf) @ Y  # X = T_flange_camera, Y = T_world_board


def calibrate_hand_eye(
    T_world_flange: Sequence[np.ndarray],
    *,
    mode: str = "eye_to_hand",
    detections: Sequence[BoardDetection] | None = None,
    intrinsics: CameraIntrinsics | None = None,
    T_camera_board: Sequence[np.ndarray] | None = None,
    method: str = "park",
    min_poses: int = 5,
    refine: bool = True,
    min_axis_spread_deg: float = 5.0,
) -> HandEyeResult:
    """Hand-eye calibration.

    Args:
        T_world_flange: flange poses from the robot (forward kinematics), one per view, 4x4 [m].
        mode: ``"eye_to_hand"`` (static camera, board on the flange) or ``"eye_in_hand"``.
        detections: board detections, one per view (with ``intrinsics``); enables the refinement.
        intrinsics: the camera's intrinsics (needed with ``detections``).
        T_camera_board: board poses in the camera per view; computed from ``detections`` if omitted.
        method: closed-form initialiser: tsai, park, horaud, andreff or daniilidis.
        min_poses: fewest views accepted.
        refine: run the joint reprojection refinement (needs detections).
        min_axis_spread_deg: see :func:`check_motion_diversity`.

    Raises:
        InsufficientDataError: fewer than ``min_poses`` views, or mismatched inputs.
        DegenerateMotionError: the motions do not make the problem observable.
    """
    import cv2

    if mode not in HAND_EYE_MODES:
        raise ValueError(f"mode must be one of {HAND_EYE_MODES}, got {mode!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    T_wf = [as_pose(T, f"T_world_flange[{i}]") for i, T in enumerate(T_world_flange)]
    n = len(T_wf)
    if n < max(3, min_poses):
        raise InsufficientDataError(
            f"hand-eye calibration needs at least {max(3, min_poses)} robot poses with the board detected, got {n} "
            "(15 or more, spread over the workspace, is recommended)"
        )
    if detections is not None:
        detections = list(detections)
        if len(detections) != n:
            raise InsufficientDataError(f"{n} robot poses but {len(detections)} board detections")
        if intrinsics is None:
            raise ValueError("detections need intrinsics")
    if T_camera_board is None:
        if detections is None:
            raise ValueError("pass detections (with intrinsics) or T_camera_board")
        T_cb = [estimate_board_pose(d, intrinsics)[0] for d in detections]
    else:
        T_cb = [as_pose(T, f"T_camera_board[{i}]") for i, T in enumerate(T_camera_board)]
        if len(T_cb) != n:
            raise InsufficientDataError(f"{n} robot poses but {len(T_cb)} board poses")
    check_motion_diversity(T_wf, min_axis_spread_deg)

    # cv2 solves T_gripper_camera from gripper->base and target->camera; eye-to-hand passes base->gripper.
    robot = T_wf if mode == "eye_in_hand" else [invert_pose(T) for T in T_wf]
    R_g = [T[:3, :3] for T in robot]
    t_g = [T[:3, 3].reshape(3, 1) for T in robot]
    R_t = [T[:3, :3] for T in T_cb]
    t_t = [T[:3, 3].reshape(3, 1) for T in T_cb]
    R, t = cv2.calibrateHandEye(R_g, t_g, R_t, t_t, method=getattr(cv2, _METHODS[method]))
    X = make_pose(R, t)
    if not np.all(np.isfinite(X)):
        raise DegenerateMotionError("the closed-form hand-eye solution is not finite; vary the robot poses more")

    def per_view_Y(X: np.ndarray) -> list[np.ndarray]:
        if mode == "eye_to_hand":
            return [invert_pose(T_wf[i]) @ X @ T_cb[i] for i in range(n)]
        return [T_wf[i] @ X @ T_cb[i] for i in range(n)]

    Y = mean_pose(per_view_Y(X))
    refined = False
    rms = float("nan")
    if detections is not None:
        K, dist = intrinsics.K, intrinsics.opencv_distortion()
        if refine:
            from scipy.optimize import least_squares

            def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return pose_from_rotvec(p[0:3], p[3:6]), pose_from_rotvec(p[6:9], p[9:12])

            def residuals(p: np.ndarray) -> np.ndarray:
                Xp, Yp = unpack(p)
                return np.concatenate([
                    (_project(d.object_points, _board_in_camera(mode, Xp, Yp, T_wf[i]), K, dist) - d.image_points).ravel()
                    for i, d in enumerate(detections)
                ])

            p0 = np.concatenate([matrix_to_rotvec(X[:3, :3]), X[:3, 3], matrix_to_rotvec(Y[:3, :3]), Y[:3, 3]])
            sol = least_squares(residuals, p0, method="lm", x_scale="jac", max_nfev=200)
            if np.all(np.isfinite(sol.x)):
                X, Y = unpack(sol.x)
                refined = True
        res = np.concatenate([
            _project(d.object_points, _board_in_camera(mode, X, Y, T_wf[i]), K, dist) - d.image_points
            for i, d in enumerate(detections)
        ])
        rms = float(np.sqrt(np.mean(np.sum(res**2, axis=1))))
    errs = [rigid_pose_error(Yi, Y) for Yi in per_view_Y(X)]
    pos_mm = float(np.sqrt(np.mean([e[0] ** 2 for e in errs]))) * 1000.0
    rot_deg = float(np.degrees(np.sqrt(np.mean([e[1] ** 2 for e in errs]))))
    if mode == "eye_to_hand":
        return HandEyeResult(mode, X, Y, None, None, rms, pos_mm, rot_deg, n, refined)
    return HandEyeResult(mode, None, None, X, Y, rms, pos_mm, rot_deg, n, refined)


__all__ = ["HAND_EYE_MODES", "HandEyeResult", "calibrate_hand_eye", "check_motion_diversity"]
