"""Synthetic images of a ChArUco board at a known pose (projective warp of the printed board).

Used by tests, benchmarks and the simulated workspace to exercise calibration with ground truth.
The camera is an ideal pinhole (distortion is not rendered).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._board import CharucoBoardSpec, render_board
from ._intrinsics import CameraIntrinsics


def render_board_view(
    spec: CharucoBoardSpec,
    intrinsics: CameraIntrinsics,
    T_camera_board: np.ndarray,
    *,
    noise_std: float = 0.0,
    blur_sigma_px: float = 0.0,
    background: int = 100,
    margin_m: float | None = None,
    supersample: int = 3,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render the board seen by a camera; returns RGB uint8 (height, width, 3).

    Args:
        spec: the board.
        intrinsics: the camera (pinhole; distortion ignored).
        T_camera_board: pose of the board frame in the camera frame, 4x4 [m].
        noise_std: standard deviation of additive Gaussian pixel noise [grey levels, 0..255].
        blur_sigma_px: Gaussian blur applied before noise [px]; 0 disables.
        background: grey level around the board.
        margin_m: white margin printed around the board [m] (default half a square).
        supersample: render at this integer factor and area-average down (anti-aliasing).
        rng: random generator for the noise.
    """
    import cv2

    T = np.asarray(T_camera_board, dtype=np.float64)
    if T[2, 3] <= 0:
        raise ValueError("the board must be in front of the camera (positive z)")
    s = int(supersample)
    K = intrinsics.scaled(intrinsics.width * s, intrinsics.height * s).K
    margin = 0.5 * spec.square_length_m if margin_m is None else float(margin_m)
    # Texture resolution: finer than the supersampled image pixels where the board is closest.
    depth = max(T[2, 3] - 0.5 * max(spec.size_m), 0.05)
    ppm = float(np.clip(K[0, 0] / depth * 1.5, 2000.0, 12000.0))
    ppm = round(spec.square_length_m * ppm) / spec.square_length_m  # whole pixels per square
    tex = render_board(spec, ppm, margin)
    # Texture pixel index (j, i) -> board metres (centre of that texture pixel).
    S = np.array([[1.0 / ppm, 0.0, 0.5 / ppm - margin], [0.0, 1.0 / ppm, 0.5 / ppm - margin], [0.0, 0.0, 1.0]])
    H = K @ np.column_stack([T[:3, 0], T[:3, 1], T[:3, 3]]) @ S
    out = cv2.warpPerspective(
        tex, H, (intrinsics.width * s, intrinsics.height * s), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=int(background),
    )
    # Surfaces facing away from the camera are not visible.
    if (T[:3, 2] @ T[:3, 3]) <= 0:
        out[:] = int(background)
    img = cv2.resize(out, (intrinsics.width, intrinsics.height), interpolation=cv2.INTER_AREA).astype(np.float32)
    if blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px)
    if noise_std > 0:
        rng = rng if rng is not None else np.random.default_rng()
        img = img + rng.normal(0.0, noise_std, img.shape).astype(np.float32)
    gray = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)




@dataclasses.dataclass(frozen=True)
class SyntheticHandEyeViews:
    """Board images at known robot poses, with the ground truth they were rendered from.

    Attributes:
        mode: ``"eye_to_hand"`` (static camera, board on the flange) or ``"eye_in_hand"``.
        spec, intrinsics: the board and the camera.
        T_world_flange: flange poses, one per image, 4x4 [m].
        images: RGB uint8 images (H, W, 3).
        T_world_camera: the static camera's pose (``eye_to_hand``), else None.
        T_flange_board: the board's pose on the flange (``eye_to_hand``), else None.
        T_flange_camera: the camera's pose on the flange (``eye_in_hand``), else None.
        T_world_board: the static board's pose (``eye_in_hand``), else None.
    """

    mode: str
    spec: CharucoBoardSpec
    intrinsics: CameraIntrinsics
    T_world_flange: tuple[np.ndarray, ...]
    images: tuple[np.ndarray, ...]
    T_world_camera: np.ndarray | None = None
    T_flange_board: np.ndarray | None = None
    T_flange_camera: np.ndarray | None = None
    T_world_board: np.ndarray | None = None


def _board_fully_visible(spec: CharucoBoardSpec, intr: CameraIntrinsics, T_cb: np.ndarray, margin_px: float = 10.0) -> bool:
    w, h = spec.size_m
    corners = np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]], dtype=np.float64)
    pc = corners @ T_cb[:3, :3].T + T_cb[:3, 3]
    if np.any(pc[:, 2] <= 0.05):
        return False
    uv = intr.project(pc)
    inside = (uv[:, 0] > margin_px) & (uv[:, 0] < intr.width - margin_px) & (uv[:, 1] > margin_px) & (uv[:, 1] < intr.height - margin_px)
    # Not seen too obliquely: the board normal within 60 deg of the viewing ray.
    centre = T_cb[:3, :3] @ np.array([w / 2, h / 2, 0.0]) + T_cb[:3, 3]
    cos = float(T_cb[:3, 2] @ centre / np.linalg.norm(centre))
    return bool(np.all(inside) and cos > 0.5)


def synthetic_hand_eye_views(
    spec: CharucoBoardSpec,
    intrinsics: CameraIntrinsics,
    mode: str = "eye_to_hand",
    n_poses: int = 15,
    *,
    noise_std: float = 2.0,
    blur_sigma_px: float = 0.7,
    max_tilt_rad: float = 0.5,
    seed: int = 0,
) -> SyntheticHandEyeViews:
    """Render a hand-eye data set with ground truth, robot poses varied about all three axes.

    ``eye_to_hand``: a camera 1.2 m from the robot looks down at the workspace around
    ``(0.5, 0, 0.25)`` m; the board is on the flange. ``eye_in_hand``: the camera sits 6 cm off the
    flange and looks along it; the board lies face up on the table around ``(0.5, 0, 0)`` m.
    """
    from ._pose import invert_pose, look_at, make_pose, rotvec_to_matrix

    rng = np.random.default_rng(seed)
    w, h = spec.size_m
    centre_board = make_pose(np.eye(3), [-w / 2, -h / 2, 0.0])  # board-centred frame -> board frame
    poses: list[np.ndarray] = []
    images: list[np.ndarray] = []
    if mode == "eye_to_hand":
        T_wc = look_at([1.15, 0.05, 0.7], [0.5, 0.0, 0.2])
        T_fb = make_pose(rotvec_to_matrix([0.0, 0.0, np.pi / 2]), [0.0, 0.0, 0.02]) @ centre_board
        while len(poses) < n_poses:
            c = np.array([0.5, 0.0, 0.25]) + rng.uniform([-0.12, -0.15, -0.05], [0.08, 0.15, 0.12])
            facing = look_at(T_wc[:3, 3], c)  # z from the camera to c: the board's z looks away
            R = facing[:3, :3] @ rotvec_to_matrix(rng.uniform(-max_tilt_rad, max_tilt_rad, 3))
            T_wb = make_pose(R, c) @ centre_board
            T_cb = invert_pose(T_wc) @ T_wb
            if not _board_fully_visible(spec, intrinsics, T_cb):
                continue
            poses.append(T_wb @ invert_pose(T_fb))
            images.append(render_board_view(spec, intrinsics, T_cb, noise_std=noise_std, blur_sigma_px=blur_sigma_px, rng=rng))
        return SyntheticHandEyeViews(mode, spec, intrinsics, tuple(poses), tuple(images), T_world_camera=T_wc, T_flange_board=T_fb)
    if mode == "eye_in_hand":
        T_fc = make_pose(rotvec_to_matrix([0.0, 0.0, -np.pi / 2]), [0.06, 0.0, 0.03])
        # Board face up: its z (into the board) points down.
        T_wb = make_pose(rotvec_to_matrix([np.pi, 0.0, 0.0]), [0.5, 0.0, 0.0]) @ centre_board
        while len(poses) < n_poses:
            eye = np.array([0.5, 0.0, 0.0]) + rng.uniform([-0.2, -0.2, 0.3], [0.2, 0.2, 0.5])
            target = np.array([0.5, 0.0, 0.0]) + rng.uniform(-0.04, 0.04, 3) * [1, 1, 0]
            T_wc = look_at(eye, target, up=(1.0, 0.0, 0.0)) @ make_pose(rotvec_to_matrix([0.0, 0.0, rng.uniform(-0.6, 0.6)]), np.zeros(3))
            T_cb = invert_pose(T_wc) @ T_wb
            if not _board_fully_visible(spec, intrinsics, T_cb):
                continue
            poses.append(T_wc @ invert_pose(T_fc))
            images.append(render_board_view(spec, intrinsics, T_cb, noise_std=noise_std, blur_sigma_px=blur_sigma_px, rng=rng))
        return SyntheticHandEyeViews(mode, spec, intrinsics, tuple(poses), tuple(images), T_flange_camera=T_fc, T_world_board=T_wb)
    raise ValueError(f"mode must be 'eye_to_hand' or 'eye_in_hand', got {mode!r}")


__all__ = ["SyntheticHandEyeViews", "render_board_view", "synthetic_hand_eye_views"]
