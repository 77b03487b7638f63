"""Global block localisation from calibrated RGB-D frames."""

from __future__ import annotations

import numpy as np
import pytest

from sim_workspace.views import SensorNoiseConfig, render_frames
from twin.config import TwinConfig
from twin.perception.correction import VisualCorrector
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.perception.localize import LocalizationError, localize_block
from twin.pusht import planar_pose_error
from twin.rig import DEFAULT_RIG


@pytest.fixture(scope="module")
def world():
    cfg = TwinConfig()
    env = PushTEnv(cfg)
    view = VisualCorrector(GaussianScene(cfg, GaussianSceneConfig(jitter=0.5, seed=7)))
    view.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG})
    return cfg, env, view


@pytest.mark.parametrize("seed", [0, 7, 13])
def test_block_is_found_within_a_centimetre_from_any_start(world, seed: int) -> None:
    cfg, env, view = world
    obs, _ = env.reset(seed=seed)
    frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG, SensorNoiseConfig(),
                           np.random.default_rng(seed))
    loc = localize_block(frames, cfg.block)
    pos, yaw = planar_pose_error(loc.pose[None], obs.block_pose[0])
    assert pos[0] < 0.01 and yaw[0] < np.deg2rad(3), (pos, np.rad2deg(yaw))
    assert loc.iou > 0.6


def test_without_depth_the_top_face_plane_is_used(world) -> None:
    cfg, env, view = world
    obs, _ = env.reset(seed=3)
    frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], None, np.random.default_rng(0))
    from dataclasses import replace

    rgb_only = {s: replace(f, depth_m=None) for s, f in frames.items()}
    loc = localize_block(rgb_only, cfg.block)
    pos, yaw = planar_pose_error(loc.pose[None], obs.block_pose[0])
    # side faces seen from one camera smear the footprint away from it: coarser, still well inside the
    # few centimetres the visual correction converges from
    assert pos[0] < 0.015 and yaw[0] < np.deg2rad(5)


def test_no_block_in_view_is_a_clear_error(world) -> None:
    cfg, env, view = world
    env.reset(options={"block_pose": [[5.0, 5.0, 0.0]], "pusher_xy": [[0.4, 0.2]]})
    frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], None, np.random.default_rng(0))
    with pytest.raises(LocalizationError, match="block not found"):
        localize_block(frames, cfg.block)


def test_refinement_in_the_image_improves_the_footprint_match(world) -> None:
    """One camera, the simulated workspace's: refining in the image beats the table-grid match alone."""
    from dataclasses import replace

    from twin.perception.localize import LocalizerConfig

    cfg, env, view = world
    rng = np.random.default_rng(5)
    errs = {True: [], False: []}
    for seed in (0, 3, 7, 13, 21):
        obs, _ = env.reset(seed=seed)
        frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], SensorNoiseConfig(), rng)
        for refine in (True, False):
            loc = localize_block(frames, cfg.block, replace(LocalizerConfig(), refine_in_image=refine))
            errs[refine].append(planar_pose_error(loc.pose[None], obs.block_pose[0])[0][0])
    assert np.median(errs[True]) < 0.004, errs
    assert np.mean(errs[True]) < np.mean(errs[False]), errs


def test_footprint_mismatch_sees_a_lost_block_even_when_the_arm_hides_part_of_it(world) -> None:
    from twin.perception.localize import footprint_mismatch

    cfg, env, view = world
    rng = np.random.default_rng(2)
    pose = np.array([0.55, 0.05, 0.7])
    # the pusher right next to the block: the arm hides part of it from the front camera
    env.reset(options={"block_pose": pose[None], "pusher_xy": [[0.50, 0.05]]})
    frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], SensorNoiseConfig(), rng)
    right = footprint_mismatch(frames, pose, cfg.block)
    assert right.observed > 100 and right.outside == 0
    assert footprint_mismatch(frames, pose + [0.005, 0.0, 0.0], cfg.block).outside_fraction < 0.02  # within tracking
    for off in ([0.05, 0.0, 0.0], [0.0, -0.05, 0.0], [0.0, 0.0, np.deg2rad(25)]):
        lost = footprint_mismatch(frames, pose + off, cfg.block)
        assert lost.outside >= 15 and lost.outside_fraction > 0.05, (off, lost)
    env.reset(options={"block_pose": [[5.0, 5.0, 0.0]], "pusher_xy": [[0.4, 0.2]]})
    empty = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], None, rng)
    nothing = footprint_mismatch(empty, pose, cfg.block)
    assert nothing.observed == 0 and nothing.outside_fraction == 0.0


def test_pixels_hidden_by_the_arm_do_not_count_against_the_true_pose(world) -> None:
    """With the arm between the camera and the block, the true pose's silhouette IoU falls (its hidden
    part is not block coloured); leaving out the pixels the arm hides (rendered from the arm's pose)
    restores it, and a pose near the block is refined onto it."""
    from twin.perception.localize import silhouette_iou

    cfg, env, view = world
    twin_view = VisualCorrector(GaussianScene(cfg))
    twin_view.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG[:1]})
    pose = np.array([0.55, 0.05, 0.7])
    env.reset(options={"block_pose": pose[None], "pusher_xy": [[0.62, 0.05]]})  # in front of the block
    frames = render_frames(view, env.body_poses()[0], env.link_poses()[0], DEFAULT_RIG[:1], SensorNoiseConfig(),
                           np.random.default_rng(3))
    occluders = twin_view.occluder_masks(env.body_poses()[0], env.link_poses()[0])
    hidden = occluders[DEFAULT_RIG[0].serial]
    assert hidden.shape == (DEFAULT_RIG[0].height, DEFAULT_RIG[0].width) and 500 < hidden.sum() < hidden.size / 2
    plain = silhouette_iou(frames, pose, cfg.block)
    aware = silhouette_iou(frames, pose, cfg.block, occluders=occluders)
    assert plain < 0.5 and aware > 0.75, (plain, aware)
    assert silhouette_iou(frames, pose + [0.02, 0.0, 0.0], cfg.block, occluders=occluders) < aware - 0.1
    loc = localize_block(frames, cfg.block, hints=(pose + [0.01, -0.01, 0.05],), occluders=occluders)
    pos, yaw = planar_pose_error(loc.pose[None], pose)
    assert pos[0] < 0.006 and yaw[0] < np.deg2rad(4.0) and loc.iou > 0.75, (loc, pos, np.rad2deg(yaw))
    with pytest.raises(ValueError):
        silhouette_iou(frames, pose, cfg.block, occluders={DEFAULT_RIG[0].serial: np.zeros((3, 3), bool)})
