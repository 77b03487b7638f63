"""Measuring the block's dimensions from frames (``twin.perception.shape_fit``) and giving the twin that block."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sim_workspace.views import SensorNoiseConfig, render_frames
from twin.config import TwinConfig
from twin.perception.correction import VisualCorrector
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.live import LiveConfig
from twin.pusht import TShape, t_outline
from twin.rig import DEFAULT_RIG
from twin.perception.shape_fit import ShapeFitConfig, deformed_block_points, fit_block_shape

RIG = DEFAULT_RIG[:1]
NOMINAL = TShape()
#: A real block 2-3 mm off the drawing in every dimension (within the simulated workspace's gap).
REAL = replace(NOMINAL, bar_length_m=0.1973, bar_width_m=0.0529, stem_width_m=0.0478, stem_length_m=0.1525)
TRUE_POSE = np.array([0.52, 0.03, 0.5])
PARKED = np.array([[0.40, 0.26]])


def dims(shape: TShape) -> np.ndarray:
    return np.array([shape.bar_length_m, shape.bar_width_m, shape.stem_width_m, shape.stem_length_m])


def test_deformation_maps_the_nominal_outline_onto_the_other_block() -> None:
    pts = torch.as_tensor(np.c_[t_outline(NOMINAL), np.full(8, 0.02)], dtype=torch.float64)
    same = deformed_block_points(pts, NOMINAL, torch.as_tensor(dims(NOMINAL)))
    assert torch.allclose(same, pts, atol=1e-12)
    moved = deformed_block_points(pts, NOMINAL, torch.as_tensor(dims(REAL))).numpy()
    # the corners land on the real T's corners, in the real T's own centre-of-mass frame
    np.testing.assert_allclose(moved[:, :2], t_outline(REAL), atol=1e-9)
    np.testing.assert_allclose(moved[:, 2], 0.02)


def test_fit_measures_the_block_and_removes_the_pose_bias() -> None:
    """Frames of the real block (another Gaussian sampling, sensor noise); the twin starts with the
    nominal block 3 mm and 1 degree off: the fit finds the dimensions to a millimetre and the real
    block's centre of mass to a millimetre."""
    truth_cfg = replace(TwinConfig(), block=REAL)
    truth = PushTEnv(truth_cfg)
    truth.reset(options={"block_pose": TRUE_POSE[None], "pusher_xy": PARKED})
    truth_view = VisualCorrector(GaussianScene(truth_cfg, GaussianSceneConfig(jitter=0.5, seed=7)))
    twin_cfg = TwinConfig()
    twin_view = VisualCorrector(GaussianScene(twin_cfg))
    for v in (twin_view, truth_view):
        v.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    rng = np.random.default_rng(0)
    frame_sets = [render_frames(truth_view, truth.body_poses()[0], truth.link_poses()[0], RIG, SensorNoiseConfig(), rng)
                  for _ in range(3)]
    twin = PushTEnv(twin_cfg)
    start = TRUE_POSE + np.array([0.002, -0.002, np.deg2rad(1.0)])
    twin.reset(options={"block_pose": start[None], "pusher_xy": PARKED})
    fit = fit_block_shape(twin_view, frame_sets, twin.body_poses()[0], twin.link_poses()[0], NOMINAL)
    assert fit.loss_after < fit.loss_before
    err = np.abs(dims(fit.shape) - dims(REAL))
    assert np.all(err < 0.001), err * 1e3
    assert np.all(err < np.abs(dims(NOMINAL) - dims(REAL))), "no dimension got worse than the nominal one"
    assert np.linalg.norm(fit.pose[:2] - TRUE_POSE[:2]) < 0.001
    assert abs(fit.pose[2] - TRUE_POSE[2]) < np.deg2rad(0.5)
    # the twin takes the measured block: physics, Gaussians
    twin.set_block_shape(fit.shape)
    obs, _ = twin.reset(options={"block_pose": fit.pose[None], "pusher_xy": PARKED})
    np.testing.assert_allclose(obs.block_pose[0], fit.pose, atol=1e-5)
    twin_view.set_block_shape(fit.shape)
    local = twin_view.scene.dynamic.means[twin_view.scene.correctable_mask].numpy()
    assert local[:, 0].max() == pytest.approx(0.5 * fit.shape.bar_length_m, abs=0.003)
    assert twin_view.residual(frame_sets[0], twin.body_poses()[0], twin.link_poses()[0]) < fit.loss_before


def test_bad_settings_and_input_are_refused() -> None:
    with pytest.raises(ValueError, match="iterations"):
        ShapeFitConfig(iterations=0)
    with pytest.raises(ValueError, match="max_change_m"):
        ShapeFitConfig(max_change_m=0.0)
    with pytest.raises(ValueError, match="shape_fit_frames"):
        LiveConfig(shape_fit_frames=-1)
    view = VisualCorrector(GaussianScene(TwinConfig()))
    view.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    twin = PushTEnv(TwinConfig())
    twin.reset()
    with pytest.raises(ValueError, match="frame sets"):
        fit_block_shape(view, [{}], twin.body_poses()[0], twin.link_poses()[0], NOMINAL)
