"""Hand-eye calibration on synthetic board images at known robot poses (noise and blur)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from calibration import (  # noqa: E402
    CameraIntrinsics,
    CharucoBoardSpec,
    DegenerateMotionError,
    InsufficientDataError,
    calibrate_hand_eye,
    detect_board,
    make_pose,
    rigid_pose_error,
    rotvec_to_matrix,
    synthetic_hand_eye_views,
)

INTR = CameraIntrinsics(610.0, 610.0, 319.5, 239.5, 640, 480)
SPEC = CharucoBoardSpec(squares_x=7, squares_y=5, square_length_m=0.03, marker_length_m=0.022)


@pytest.fixture(scope="module", params=["eye_to_hand", "eye_in_hand"])
def views(request):
    ds = synthetic_hand_eye_views(SPEC, INTR, request.param, 15, noise_std=2.0, blur_sigma_px=0.7, seed=11)
    return ds, [detect_board(im, SPEC) for im in ds.images]


def test_hand_eye_15_noisy_poses_within_2mm_02deg(views):
    ds, dets = views
    res = calibrate_hand_eye(ds.T_world_flange, mode=ds.mode, detections=dets, intrinsics=INTR)
    assert res.refined and res.n_poses == 15
    if ds.mode == "eye_to_hand":
        dt, dr = rigid_pose_error(res.T_world_camera, ds.T_world_camera)
        dt2, dr2 = rigid_pose_error(res.T_flange_board, ds.T_flange_board)
    else:
        dt, dr = rigid_pose_error(res.T_flange_camera, ds.T_flange_camera)
        dt2, dr2 = rigid_pose_error(res.T_world_board, ds.T_world_board)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    assert dt2 < 2e-3 and np.degrees(dr2) < 0.2
    assert res.reprojection_rms_px < 0.5
    assert res.consistency_pos_mm < 2.0 and res.consistency_rot_deg < 0.5
    assert set(res.residuals()) >= {"handeye_pos_consistency_mm", "handeye_rot_consistency_deg", "reprojection_rms_px"}


def test_too_few_poses(views):
    ds, dets = views
    with pytest.raises(InsufficientDataError, match="at least 5 robot poses"):
        calibrate_hand_eye(ds.T_world_flange[:3], mode=ds.mode, detections=dets[:3], intrinsics=INTR)
    with pytest.raises(InsufficientDataError, match="15 robot poses but 14"):
        calibrate_hand_eye(ds.T_world_flange, mode=ds.mode, detections=dets[:14], intrinsics=INTR)


def test_degenerate_motions():
    base = make_pose(rotvec_to_matrix([np.pi, 0.0, 0.0]), [0.5, 0.0, 0.3])
    boards = [np.eye(4)] * 8
    pure_translation = [base @ make_pose(np.eye(3), [0.02 * i, 0.01 * i, 0.0]) for i in range(8)]
    with pytest.raises(DegenerateMotionError, match="barely rotates"):
        calibrate_hand_eye(pure_translation, T_camera_board=boards)
    one_axis = [base @ make_pose(rotvec_to_matrix([0.0, 0.0, 0.2 * i]), [0.02 * i, 0.0, 0.0]) for i in range(8)]
    with pytest.raises(DegenerateMotionError, match="single axis"):
        calibrate_hand_eye(one_axis, T_camera_board=boards)
