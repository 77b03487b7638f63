"""Extrinsics (T_world_camera) from synthetic views of a board at a known world pose."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from calibration import (  # noqa: E402
    CameraIntrinsics,
    CharucoBoardSpec,
    InsufficientDataError,
    detect_board,
    estimate_extrinsics,
    invert_pose,
    look_at,
    make_pose,
    rigid_pose_error,
    render_board_view,
    rotvec_to_matrix,
)

# A D435-like colour camera at 1280x720 and an A2-size board lying face up on the table.
INTR = CameraIntrinsics(910.0, 910.0, 639.5, 359.5, 1280, 720)
SPEC = CharucoBoardSpec(squares_x=9, squares_y=6, square_length_m=0.05, marker_length_m=0.037)
T_WORLD_CAMERA = look_at([0.9, 0.3, 0.7], [0.45, 0.0, 0.0])
T_WORLD_BOARD = make_pose(rotvec_to_matrix([np.pi, 0.0, 0.0]), [0.45 - 0.225, 0.15, 0.0])


def _views(noise_std: float, blur_sigma_px: float, n: int = 3) -> list:
    T_cb = invert_pose(T_WORLD_CAMERA) @ T_WORLD_BOARD
    rng = np.random.default_rng(7)
    imgs = [render_board_view(SPEC, INTR, T_cb, noise_std=noise_std, blur_sigma_px=blur_sigma_px, rng=rng) for _ in range(n)]
    return [detect_board(im, SPEC) for im in imgs]


def test_extrinsics_without_noise_within_1mm_01deg():
    res = estimate_extrinsics(_views(0.0, 0.0, n=1), INTR, T_WORLD_BOARD)
    dt, dr = rigid_pose_error(res.T_world_camera, T_WORLD_CAMERA)
    assert dt < 1e-3 and np.degrees(dr) < 0.1
    assert res.reprojection_rms_px < 0.2 and res.n_corners == SPEC.num_corners


def test_extrinsics_with_noise_and_blur_within_2mm_02deg():
    res = estimate_extrinsics(_views(3.0, 1.0), INTR, T_WORLD_BOARD)
    dt, dr = rigid_pose_error(res.T_world_camera, T_WORLD_CAMERA)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    assert res.n_views == 3 and res.view_spread_mm < 2.0


def test_no_views_is_a_clear_error():
    with pytest.raises(InsufficientDataError, match="at least one view"):
        estimate_extrinsics([], INTR, T_WORLD_BOARD)
