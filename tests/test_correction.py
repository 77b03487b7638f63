"""Visual-force correction on synthetic observations (rendered from a true state with another sampling
of Gaussians and sensor noise)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from sim_workspace.views import SensorNoiseConfig, render_frames
from twin.cameras import CameraFrame
from twin.config import TwinConfig
from twin.perception.correction import VisualCorrector
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.pusht import planar_pose_error
from twin.rig import DEFAULT_RIG

RIG = DEFAULT_RIG[:1]
TRUE = np.array([0.54, 0.02, 0.3])
PARKED = np.array([[0.40, 0.26]])


@pytest.fixture(scope="module")
def views() -> tuple[VisualCorrector, VisualCorrector]:
    cfg = TwinConfig()
    twin = VisualCorrector(GaussianScene(cfg))
    truth = VisualCorrector(GaussianScene(cfg, GaussianSceneConfig(jitter=0.5, seed=7)))
    for v in (twin, truth):
        v.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    return twin, truth


def make_pair(offset: np.ndarray, truth_joints: np.ndarray | None = None) -> tuple[PushTEnv, PushTEnv]:
    twin, truth = PushTEnv(TwinConfig()), PushTEnv(TwinConfig())
    truth.reset(options={"block_pose": TRUE[None], "pusher_xy": PARKED, **({"joint_pos": truth_joints} if truth_joints is not None else {})})
    twin.reset(options={"block_pose": (TRUE + offset)[None], "pusher_xy": PARKED})
    return twin, truth


def observe(truth_view: VisualCorrector, truth: PushTEnv, rng: np.random.Generator, **kw) -> dict:
    return render_frames(truth_view, truth.body_poses()[0], truth.link_poses()[0], RIG, SensorNoiseConfig(), rng, **kw)


def test_correction_converges_from_2cm_and_10deg(views) -> None:
    twin_view, truth_view = views
    twin, truth = make_pair(np.array([0.02, -0.01, np.deg2rad(10)]))
    rng = np.random.default_rng(0)
    obs = twin._observe()
    for _ in range(15):
        result = twin_view.correct(observe(truth_view, truth, rng), twin)
        assert result.active and result.cameras_used == (RIG[0].serial,)
        obs, *_ = twin.step(obs.pusher_xy, block_springs=twin_view.springs([result]))
    pos, yaw = planar_pose_error(obs.block_pose, TRUE)
    assert pos[0] < 0.003 and yaw[0] < np.deg2rad(2.0), (pos, np.rad2deg(yaw))


def test_estimate_points_the_right_way(views) -> None:
    twin_view, truth_view = views
    twin, truth = make_pair(np.array([0.01, 0.0, 0.0]))
    result = twin_view.correct(observe(truth_view, truth, np.random.default_rng(1)), twin)
    assert result.delta_xy_m[0] < -0.003 and abs(result.delta_xy_m[1]) < 0.003
    twin, truth = make_pair(np.array([0.0, 0.0, np.deg2rad(-6)]))
    result = twin_view.correct(observe(truth_view, truth, np.random.default_rng(1)), twin)
    assert result.delta_yaw_rad > np.deg2rad(1.0)


@pytest.mark.parametrize("solver", ["gauss_newton", "adam"])
def test_one_frame_set_reads_a_small_offset_at_its_size(views, solver: str) -> None:
    """At rest near the goal the twin's block is a millimetre or two and a degree off: one frame set must
    read such an offset at its size and without a false turn or shift, or the twin jitters about the
    truth. Gauss-Newton does (within 0.3 mm and 0.2 degree); the Adam solver's fixed-size steps read
    1 mm as about 2 mm, and a 1 degree turn with a shift of 0.8 mm."""
    twin_view, truth_view = views
    cfg = replace(twin_view.config, solver=solver)
    view = VisualCorrector(twin_view.scene, cfg)
    view.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    errors = []
    for offset in ([0.001, 0.0, 0.0], [0.0, -0.002, 0.0], [0.0, 0.0, np.deg2rad(1.0)], [0.002, 0.001, np.deg2rad(-1.0)]):
        offset = np.array(offset)
        twin, truth = make_pair(offset)
        result = view.correct(observe(truth_view, truth, np.random.default_rng(4)), twin)
        assert result.active
        read = np.r_[result.delta_xy_m, result.delta_yaw_rad]
        errors.append(np.abs(read + offset))  # the correction undoes the offset
    errors = np.array(errors)
    worst_mm, worst_deg = errors[:, :2].max() * 1e3, np.rad2deg(errors[:, 2].max())
    if solver == "gauss_newton":
        assert worst_mm < 0.3 and worst_deg < 0.2, (worst_mm, worst_deg)
    else:  # what the default solver is chosen over
        assert worst_mm > 0.6 or worst_deg > 0.3, (worst_mm, worst_deg)


def test_robot_is_never_corrected(views) -> None:
    """The real arm stands elsewhere than the twin's: the twin's joints and pusher do not move, and the
    aligned block is not pushed away by the robot's pixels."""
    twin_view, truth_view = views
    q_other = PushTEnv(TwinConfig()).q_start + np.array([0.3, 0.2, 0.0, 0.2, 0.0, -0.2, 0.5])
    twin, truth = make_pair(np.zeros(3), truth_joints=q_other[None])
    uncorrected, _ = make_pair(np.zeros(3))
    obs = twin._observe()
    rng = np.random.default_rng(2)
    for _ in range(8):
        result = twin_view.correct(observe(truth_view, truth, rng), twin)
        action = obs.pusher_xy.copy()
        obs, *_ = twin.step(action, block_springs=twin_view.springs([result]))
        ref, *_ = uncorrected.step(action)
    # the twin's robot does exactly what it does without correction
    np.testing.assert_array_equal(obs.joint_pos, ref.joint_pos)
    np.testing.assert_array_equal(obs.pusher_xy, ref.pusher_xy)
    assert twin_view.scene.correctable_names == ("block",)
    pos, yaw = planar_pose_error(obs.block_pose, TRUE)
    assert pos[0] < 0.003 and yaw[0] < np.deg2rad(2.0)


def test_occlusion_by_a_masked_region_still_corrects(views) -> None:
    twin_view, truth_view = views
    twin, truth = make_pair(np.array([0.015, 0.0, 0.0]))
    frames = observe(truth_view, truth, np.random.default_rng(3))
    frame = frames[RIG[0].serial]
    rgb = frame.rgb.copy()
    h, w = rgb.shape[:2]
    rgb[:, : w // 3] = 255  # a third of the image is garbage (e.g. a person's arm) ...
    mask = np.zeros((h, w), dtype=bool)
    mask[:, : w // 3] = True  # ... and masked out
    bad = replace(frame, rgb=rgb)
    result = twin_view.correct({RIG[0].serial: bad}, twin, ignore_masks={RIG[0].serial: mask})
    assert result.active and result.delta_xy_m[0] < -0.003


def test_bad_input_is_skipped_or_rejected(views) -> None:
    twin_view, truth_view = views
    twin, truth = make_pair(np.zeros(3))
    before = dict(twin_view.counters)
    assert twin_view.correct({}, twin).skipped == "empty frame set"
    frames = observe(truth_view, truth, np.random.default_rng(4), host_time_ns=time.monotonic_ns() - int(2e9))
    late = twin_view.correct(frames, twin)
    assert not late.active and twin_view.counters["late_frame"] == before.get("late_frame", 0) + 1
    frame = observe(truth_view, truth, np.random.default_rng(4))[RIG[0].serial]
    unknown = twin_view.correct({"not-calibrated": replace(frame, serial="not-calibrated")}, twin)
    assert not unknown.active and twin_view.counters["unknown_camera"] >= 1
    depth = frame.depth_m.copy()
    depth[:10] = np.nan
    ok = twin_view.correct({RIG[0].serial: replace(frame, depth_m=depth)}, twin)
    assert ok.active and np.all(np.isfinite(ok.target_pose))
    assert twin_view.counters["nonfinite_depth_pixels"] >= 10 * depth.shape[1]
    small = RIG[0].intrinsics.scaled(80, 60)
    wrong = CameraFrame(serial=RIG[0].serial, rgb=np.zeros((60, 80, 3), np.uint8), depth_m=None, intrinsics=small,
                        T_world_camera=None, device_time_ms=0.0, host_time_ns=time.monotonic_ns())
    with pytest.raises(ValueError, match="does not match its calibration"):
        twin_view.correct({RIG[0].serial: wrong}, twin)
    with pytest.raises(ValueError, match="at least one camera"):
        VisualCorrector(twin_view.scene).set_cameras({})


def test_exposure_drift_does_not_bias_the_estimate(views) -> None:
    twin_view, truth_view = views
    twin, truth = make_pair(np.zeros(3))
    frame = observe(truth_view, truth, np.random.default_rng(5))[RIG[0].serial]
    dark = replace(frame, rgb=(frame.rgb.astype(np.float64) * np.array([0.75, 0.8, 0.85])).astype(np.uint8))
    normal = twin_view.correct({RIG[0].serial: frame}, twin, now_ns=frame.host_time_ns)
    result = twin_view.correct({RIG[0].serial: dark}, twin, now_ns=frame.host_time_ns)
    assert result.active
    assert np.linalg.norm(result.delta_xy_m) < 0.002 and abs(result.delta_yaw_rad) < np.deg2rad(1.0)
    # the drift is explained by the gains, not left in the residual
    assert result.loss < 1.3 * normal.loss


def test_delayed_measurements_carried_by_pushes_only_do_not_oscillate(views) -> None:
    """Frames show the twin's state of two steps ago (latency). Carrying each measurement on by all the
    twin's motion since then counts the visual forces' own pull again in every frame: the block swings
    around the truth. Carrying it by the pushes only (none here) settles it."""
    from twin.perception.correction import CorrectionConfig

    twin_view, truth_view = views
    corrector = VisualCorrector(twin_view.scene, CorrectionConfig(carry="twin"))
    corrector.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    worst = {}
    for mode, carried in (("all motion", None), ("pushes only", np.zeros(3))):
        twin, truth = make_pair(np.array([0.003, -0.002, 0.0]))
        rng = np.random.default_rng(0)
        obs, history, errors = twin._observe(), [], []
        for _ in range(20):
            history.append((twin.body_poses()[0], twin.link_poses()[0]))
            result = corrector.correct(observe(truth_view, truth, rng), twin, seen_state=history[max(0, len(history) - 3)],
                                       carried=carried)
            obs, *_ = twin.step(obs.pusher_xy, block_springs=corrector.springs([result]))
            errors.append(float(np.linalg.norm(obs.block_pose[0, :2] - TRUE[:2])))
        worst[mode] = max(errors[5:])
    assert worst["pushes only"] < 0.004, worst
    assert worst["all motion"] > 1.5 * worst["pushes only"], worst
