"""Camera calibration: intrinsics, ChArUco extrinsics, hand-eye, the calibration file and its checks.

Conventions: metres; poses are 4x4 float64 homogeneous ``T_a_b`` (pose of frame b in frame a);
cameras use the OpenCV frame (x right, y down, z forward); ``world`` is the robot base frame.

Importing this package loads only numpy and PyYAML; OpenCV loads when a board/estimation function
is first used.

Typical use::

    from calibration import load_calibration
    setup = load_calibration("calib/lab.yaml")
    cam = setup.camera("123456789012")          # MissingCameraError names the serial if absent
    K, T_world_camera = cam.intrinsics.K, cam.T_world_camera
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    DegenerateMotionError,
    InsufficientDataError,
    MissingCameraError,
)
from ._file import (
    CameraCalibration,
    SetupCalibration,
    load_calibration,
    save_calibration,
    utc_now_iso,
)
from ._intrinsics import DISTORTION_MODELS, CameraIntrinsics
from ._pose import (
    as_pose,
    invert_pose,
    look_at,
    make_pose,
    matrix_to_rotvec,
    mean_pose,
    rigid_pose_error,
    pose_from_rotvec,
    rotation_angle,
    rotvec_to_matrix,
)
from ._report import QualityReport, QualityThresholds, quality_report

# Names whose modules import OpenCV, loaded on first access.
_LAZY = {
    "CharucoBoardSpec": "._board",
    "BoardDetection": "._board",
    "BoardPrint": "._board",
    "detect_board": "._board",
    "render_board": "._board",
    "write_board": "._board",
    "render_board_view": "._render",
    "CapturedView": "._capture",
    "capture_hand_eye_views": "._capture",
    "SyntheticHandEyeViews": "._render",
    "synthetic_hand_eye_views": "._render",
    "ExtrinsicsResult": "._estimate",
    "IntrinsicsResult": "._estimate",
    "estimate_board_pose": "._estimate",
    "estimate_extrinsics": "._estimate",
    "estimate_intrinsics": "._estimate",
    "reprojection_residuals": "._estimate",
    "HAND_EYE_MODES": "._handeye",
    "HandEyeResult": "._handeye",
    "calibrate_hand_eye": "._handeye",
    "check_motion_diversity": "._handeye",
    "HandEyeViews": "._views",
    "load_hand_eye_views": "._views",
    "write_views_file": "._views",
    "board_reprojection_rms": "._views",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._board import (
        BoardDetection,
        BoardPrint,
        CharucoBoardSpec,
        detect_board,
        render_board,
        write_board,
    )
    from ._capture import CapturedView, capture_hand_eye_views
    from ._estimate import (
        ExtrinsicsResult,
        IntrinsicsResult,
        estimate_board_pose,
        estimate_extrinsics,
        estimate_intrinsics,
        reprojection_residuals,
    )
    from ._handeye import (
        HAND_EYE_MODES,
        HandEyeResult,
        calibrate_hand_eye,
        check_motion_diversity,
    )
    from ._render import (
        SyntheticHandEyeViews,
        render_board_view,
        synthetic_hand_eye_views,
    )


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'calibration' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BoardDetection",
    "BoardNotFoundError",
    "BoardPrint",
    "CalibrationError",
    "CalibrationFileError",
    "CameraCalibration",
    "CameraIntrinsics",
    "CapturedView",
    "CharucoBoardSpec",
    "DISTORTION_MODELS",
    "DegenerateMotionError",
    "ExtrinsicsResult",
    "HAND_EYE_MODES",
    "HandEyeResult",
    "HandEyeViews",
    "InsufficientDataError",
    "IntrinsicsResult",
    "MissingCameraError",
    "QualityReport",
    "QualityThresholds",
    "SetupCalibration",
    "SyntheticHandEyeViews",
    "as_pose",
    "board_reprojection_rms",
    "calibrate_hand_eye",
    "capture_hand_eye_views",
    "check_motion_diversity",
    "detect_board",
    "estimate_board_pose",
    "estimate_extrinsics",
    "estimate_intrinsics",
    "invert_pose",
    "load_calibration",
    "load_hand_eye_views",
    "look_at",
    "make_pose",
    "matrix_to_rotvec",
    "mean_pose",
    "rigid_pose_error",
    "pose_from_rotvec",
    "quality_report",
    "render_board",
    "render_board_view",
    "reprojection_residuals",
    "rotation_angle",
    "rotvec_to_matrix",
    "save_calibration",
    "synthetic_hand_eye_views",
    "utc_now_iso",
    "write_board",
    "write_views_file",
]
