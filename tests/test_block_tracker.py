"""The block tracker (twin.perception.tracker.BlockTracker) on synthetic frame sets: the cases that were
the live loop's own behaviour (snap, re-localise, rest average, settle after a jump and after a push)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from sim_workspace.views import SensorNoiseConfig, render_frames
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.perception.correction import CorrectionConfig, CorrectionResult, VisualCorrector
from twin.perception.localize import LocalizerConfig
from twin.perception.tracker import BlockTracker, BlockTrackerConfig
from twin.pusht import planar_pose_error
from twin.rig import DEFAULT_RIG

RIG = DEFAULT_RIG[:1]
TRUE = np.array([0.54, 0.02, 0.3])
PARKED = np.array([[0.40, 0.26]])
CFG = TwinConfig()


@pytest.fixture(scope="module")
def truth_view() -> VisualCorrector:
    v = VisualCorrector(GaussianScene(CFG, GaussianSceneConfig(jitter=0.5, seed=7)))
    v.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    return v


def _setup(offset, config: BlockTrackerConfig = BlockTrackerConfig()):
    twin, truth = PushTEnv(CFG), PushTEnv(CFG)
    truth.reset(options={"block_pose": TRUE[None], "pusher_xy": PARKED})
    twin.reset(options={"block_pose": (TRUE + np.asarray(offset))[None], "pusher_xy": PARKED})
    corrector = VisualCorrector(GaussianScene(CFG), CorrectionConfig())
    corrector.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in RIG})
    counters: Counter = Counter()
    tracker = BlockTracker(config, twin, corrector, CFG.block, CFG.physics.pusher_radius_m, LocalizerConfig(),
                           corrector.config.reach_m, counters)
    return twin, truth, corrector, tracker, counters


def _frames(truth_view, truth, rng):
    return render_frames(truth_view, truth.body_poses()[0], truth.link_poses()[0], RIG, SensorNoiseConfig(), rng)


def _step(twin, tracker, corrector, result, action=None):
    before = twin.observe()
    out = twin.step(before.pusher_xy if action is None else action, block_springs=corrector.springs([result]))
    tracker.after_twin_step(before, out[0], robot_lag_s=0.0)
    return out[0]


@pytest.mark.slow  # 45 s on 2 cores: a whole push through the tracker's snap and settle
def test_a_far_trusted_measurement_snaps_the_twins_block_then_the_policy_waits_for_the_correction(truth_view):
    twin, truth, corrector, tracker, counters = _setup([0.025, 0.0, 0.0])
    rng = np.random.default_rng(0)
    obs = twin.observe()
    update = tracker.update(_frames(truth_view, truth, rng), obs.block_pose[0])
    assert update.snapped and counters["snaps"] == 1
    (off,), _ = planar_pose_error(twin.observe().block_pose, TRUE)
    assert off < 0.006  # the block is put (close to) where the images show it, at once
    assert tracker.settling_after_jump and not tracker.confirmed
    frame_sets = 0
    while tracker.settling_after_jump:  # unsurprising frame sets in a row end the wait
        update = tracker.update(_frames(truth_view, truth, rng), twin.observe().block_pose[0])
        _step(twin, tracker, corrector, update.result)
        frame_sets += 1
        assert frame_sets <= BlockTrackerConfig().settle_after_jump_max_frames
    assert frame_sets >= BlockTrackerConfig().settle_after_jump_frames and tracker.confirmed


def test_a_block_moved_beyond_the_corrections_reach_is_relocalised(truth_view):
    twin, truth, corrector, tracker, counters = _setup([0.0, 0.06, np.deg2rad(25)])
    rng = np.random.default_rng(1)
    update = tracker.update(_frames(truth_view, truth, rng), twin.observe().block_pose[0])
    assert update.surprising and update.relocalized and counters["relocalizations"] == 1
    (off,), (off_yaw,) = planar_pose_error(update.result.target_pose, TRUE)
    assert off < 0.008 and off_yaw < np.deg2rad(4.0)
    assert update.snapped  # and, being far from the twin's block, put there
    (off,), _ = planar_pose_error(twin.observe().block_pose, TRUE)
    assert off < 0.008


def test_measurements_at_rest_are_averaged_until_a_push_moves_the_block(truth_view):
    twin, truth, corrector, tracker, counters = _setup([0.0, 0.0, 0.0], BlockTrackerConfig(rest_filter=0.35))
    rng = np.random.default_rng(2)
    targets = []
    for _ in range(4):
        update = tracker.update(_frames(truth_view, truth, rng), twin.observe().block_pose[0])
        targets.append(update.result.target_pose.copy())
        _step(twin, tracker, corrector, update.result)
    assert counters["averaged_at_rest"] >= 2
    # without averaging (rest_filter 1) the same frames are taken as they are
    twin2, truth2, corrector2, tracker2, counters2 = _setup([0.0, 0.0, 0.0], BlockTrackerConfig(rest_filter=1.0))
    rng = np.random.default_rng(2)
    for _ in range(4):
        update = tracker2.update(_frames(truth_view, truth2, rng), twin2.observe().block_pose[0])
        _step(twin2, tracker2, corrector2, update.result)
    assert counters2["averaged_at_rest"] == 0


def test_after_a_push_the_policy_waits_until_the_images_agree(truth_view):
    config = BlockTrackerConfig(settle_after_push_m=0.002, settle_after_push_deg=1.0, settle_after_push_max_frames=6)
    twin, truth, corrector, tracker, counters = _setup([0.0, 0.0, 0.0], config)
    block = twin.observe().block_pose[0]
    # drive the pusher against the block's stem, then away: touching, then a push that ended
    start = block[:2] + np.array([-0.12, 0.0])
    twin.reset(options={"block_pose": block[None], "pusher_xy": start[None]})
    touched = False
    for x in np.linspace(start[0], block[0] - 0.02, 12):
        _step(twin, tracker, corrector, CorrectionResult(), np.array([[x, start[1]]]))
        touched |= tracker.touching
    assert touched and not tracker.settling_after_push  # a push under way is no wait yet
    while tracker.touching:
        _step(twin, tracker, corrector, CorrectionResult(), np.array([[start[0], start[1] - 0.1]]))
    assert tracker.settling_after_push and not tracker.confirmed
    # the steps above ran far faster than real time, so their latency history would match these frames
    # with a state from the middle of the push: start it afresh (the wait is kept)
    tracker.forget_history()
    assert tracker.settling_after_push
    # the real block and arm are where the twin's are: frame sets that agree end the wait within the budget
    truth.reset(options={"block_pose": twin.observe().block_pose, "joint_pos": twin.joint_positions()})
    rng = np.random.default_rng(3)
    for _ in range(config.settle_after_push_max_frames):
        if not tracker.settling_after_push:
            break
        update = tracker.update(_frames(truth_view, truth, rng), twin.observe().block_pose[0])
        _step(twin, tracker, corrector, update.result)
    assert not tracker.settling_after_push and tracker.confirmed


def test_reset_forgets_waits_and_history(truth_view):
    twin, truth, corrector, tracker, counters = _setup([0.025, 0.0, 0.0])
    tracker.update(_frames(truth_view, truth, np.random.default_rng(4)), twin.observe().block_pose[0])
    assert tracker.settling_after_jump
    tracker.reset()
    assert tracker.confirmed and not tracker.settling_after_jump and not tracker.settling_after_push


def test_bad_tracker_settings_are_refused():
    with pytest.raises(ValueError):
        BlockTrackerConfig(rest_filter=0.0)
    with pytest.raises(ValueError):
        BlockTrackerConfig(settle_after_push_max_frames=-1)
    with pytest.raises(ValueError):
        replace(BlockTrackerConfig(), camera_latency_s=-0.1)
