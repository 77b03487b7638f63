"""A wrist camera on the simulated workspace's arm: its frames follow the flange, its calibration is a
hand-eye pose, and the twin's correction renders it from the flange's pose of the state it compares."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sim_workspace.appearance import AppearanceGapConfig, CalibrationErrorConfig
from sim_workspace.world import TruthRig, WorldConfig
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene
from twin.perception.correction import VisualCorrector
from twin.pusht import planar_pose_error
from twin.rig import FLANGE_LINK

torch.set_num_threads(1)
TRUE = np.array([0.52, 0.03, 0.4])


@pytest.fixture(scope="module")
def rig():
    """The nominal look, an exact calibration and a wrist camera (what is tested is the camera's geometry)."""
    cfg = WorldConfig(seed=4, wrist_camera=True, appearance=AppearanceGapConfig(enabled=False),
                      calibration_error=CalibrationErrorConfig(enabled=False))
    rig = TruthRig.draw(cfg, np.random.default_rng(4))
    truth = PushTEnv(replace(rig.truth, block=TwinConfig().block))
    truth.reset(options={"block_pose": TRUE[None], "pusher_xy": np.array([[0.45, -0.12]])})
    return cfg, rig, truth


def test_wrist_frames_follow_the_flange(rig) -> None:
    cfg, rig, truth = rig
    frames = rig.frames(truth.body_poses()[0], truth.link_poses()[0], cfg, np.random.default_rng(0))
    assert set(frames) == {cfg.cameras[0].serial, cfg.wrist.serial}
    wrist = frames[cfg.wrist.serial]
    expected = truth.link_poses()[0][FLANGE_LINK] @ cfg.wrist.T_mount_camera
    assert np.allclose(wrist.T_world_camera, expected)
    assert wrist.T_world_camera[2, 3] > 0.1 and (wrist.depth_m > 0).mean() > 0.5  # above the table, seeing it
    # the camera looks along the pusher: the pusher's tip projects near the image centre's column
    tip = truth.body_poses()[0][1, :3]
    p = np.linalg.inv(wrist.T_world_camera) @ np.r_[tip, 1.0]
    u = wrist.intrinsics.fx * p[0] / p[2] + wrist.intrinsics.cx
    assert p[2] > 0 and abs(u - wrist.intrinsics.cx) < 0.2 * wrist.intrinsics.width
    # a calibration file holds its hand-eye pose, not a world pose
    told = rig.frames(truth.body_poses()[0], truth.link_poses()[0], cfg, np.random.default_rng(0), with_poses=False)
    assert all(f.T_world_camera is None for f in told.values())


def test_the_correction_reads_a_block_offset_from_the_wrist_camera_alone(rig) -> None:
    cfg, rig, truth = rig
    twin = PushTEnv(TwinConfig())
    offset = np.array([0.004, -0.003, 0.0])
    twin.reset(options={"block_pose": (TRUE + offset)[None], "pusher_xy": np.array([[0.45, -0.12]])})
    corrector = VisualCorrector(GaussianScene(TwinConfig()))
    corrector.set_cameras({}, wrist={cfg.wrist.serial: (cfg.wrist.intrinsics, cfg.wrist.T_mount_camera)})
    frames = rig.frames(truth.body_poses()[0], truth.link_poses()[0], cfg, np.random.default_rng(1))
    result = corrector.correct({cfg.wrist.serial: frames[cfg.wrist.serial]}, twin)
    assert result.active and result.cameras_used == (cfg.wrist.serial,)
    pos, _ = planar_pose_error(result.observed_pose[None], TRUE)
    assert pos[0] < 0.5 * np.linalg.norm(offset[:2]), (pos, result.delta_xy_m)
    assert corrector.occluder_masks(twin.body_poses()[0], twin.link_poses()[0]) == {}  # fixed cameras only


def test_the_world_writes_a_hand_eye_calibration(rig, tmp_path) -> None:
    from calibration import load_calibration
    from sim_workspace.world import SimulatedWorld

    cfg, _, _ = rig
    from launch._common import free_tcp_endpoints

    robot, cams, truth, control = free_tcp_endpoints(4)
    world = SimulatedWorld(replace(cfg, calibration_error=CalibrationErrorConfig(), robot_address=robot, camera_endpoint=cams,
                                   truth_endpoint=truth, control_endpoint=control, calibration_path=str(tmp_path / "c.yaml")))
    try:
        setup = load_calibration(tmp_path / "c.yaml")
    finally:
        world.close()
    cam = setup.cameras[cfg.wrist.serial]
    assert cam.mount == "wrist" and cam.T_world_camera is None and cam.extrinsics_method == "hand_eye_eye_in_hand"
    error_mm = 1e3 * np.linalg.norm(cam.T_flange_camera[:3, 3] - cfg.wrist.T_mount_camera[:3, 3])
    assert 1.0 <= error_mm <= 4.0  # off by the drawn error, like the fixed cameras
    assert setup.cameras[cfg.cameras[0].serial].mount == "static"
