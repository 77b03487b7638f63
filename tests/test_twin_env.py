"""Behaviour of the vectorised PushT twin (Newton physics on the CPU)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from twin.config import TwinConfig
from twin.env import PushTEnv

# A block in the middle of the workspace, bar along x, stem pointing to -y (its tip at y = -0.132 m).
BLOCK = np.array([0.55, 0.0, 0.0])
PUSHER_FAR = np.array([0.40, 0.25])


def make_env(n: int = 1, **kw) -> PushTEnv:
    return PushTEnv(replace(TwinConfig(), num_worlds=n, **kw))


@pytest.fixture(scope="module")
def env3() -> PushTEnv:
    return make_env(3)


def hold(env: PushTEnv, obs) -> np.ndarray:
    return obs.pusher_xy.copy()


def test_block_at_rest_stays_at_rest(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile(PUSHER_FAR, (3, 1))})
    obs, *_ = env3.step(hold(env3, obs))  # first step: contact settles
    start = obs.block_pose.copy()
    for _ in range(20):
        obs, *_ = env3.step(hold(env3, obs))
    np.testing.assert_allclose(obs.block_pose[:, :2], start[:, :2], atol=5e-4)
    assert np.max(np.abs(obs.block_pose[:, 2] - start[:, 2])) < np.deg2rad(0.2)
    assert np.max(np.abs(obs.block_pose[:, :2] - BLOCK[:2])) < 2e-3


def test_pushing_moves_block_in_push_direction(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile([0.55, -0.20], (3, 1))})
    for _ in range(15):  # push +y along the stem at 0.1 m/s for 1.5 s
        a = obs.pusher_xy + [0.0, 0.01]
        obs, *_ = env3.step(a)
    dy = obs.block_pose[:, 1] - BLOCK[1]
    assert np.all(dy > 0.05), dy
    assert np.all(np.abs(obs.block_pose[:, 0] - BLOCK[0]) < 0.01)
    assert np.all(np.abs(obs.block_pose[:, 2]) < np.deg2rad(5))
    # the pusher followed the commanded path, at its fixed height, and is in contact (not inside) the block
    assert np.all(obs.pusher_xy[:, 1] > -0.06)


def test_pusher_off_centre_rotates_block(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile([0.63, -0.05], (3, 1))})
    for _ in range(12):  # push +y under the bar's right end: counter-clockwise rotation
        obs, *_ = env3.step(obs.pusher_xy + [0.0, 0.01])
    assert np.all(obs.block_pose[:, 2] > np.deg2rad(5))


def test_worlds_do_not_affect_each_other() -> None:
    batch = make_env(3)
    single = make_env(1)
    blocks = np.array([BLOCK, BLOCK + [0.0, 0.05, 0.5], BLOCK])
    pushers = np.array([[0.55, -0.20], [0.40, 0.25], [0.63, -0.05]])
    ob, _ = batch.reset(options={"block_pose": blocks, "pusher_xy": pushers})
    os_, _ = single.reset(options={"block_pose": blocks[:1], "pusher_xy": pushers[:1]})
    for k in range(10):
        a = ob.pusher_xy + np.array([[0.0, 0.01], [0.01 * np.sin(k), 0.0], [0.0, 0.01]])
        ob, *_ = batch.step(a)
        os_, *_ = single.step(a[:1])
    np.testing.assert_allclose(ob.block_pose[0], os_.block_pose[0], atol=1e-5)
    # world 1 never touched its block
    np.testing.assert_allclose(ob.block_pose[1, :2], blocks[1, :2], atol=2e-3)


def test_same_seed_same_rollout() -> None:
    def rollout() -> np.ndarray:
        env = make_env(2)
        obs, info = env.reset(seed=11)
        rng = np.random.default_rng(5)
        traj = [obs.block_pose]
        for _ in range(8):
            obs, *_ = env.step(obs.block_pose[:, :2] + rng.normal(0, 0.02, size=(2, 2)))
            traj.append(obs.block_pose)
        return np.array(traj)

    a, b = rollout(), rollout()
    np.testing.assert_array_equal(a, b)


def test_seeded_reset_is_per_episode_and_batch_size_independent(env3: PushTEnv) -> None:
    _, info3 = env3.reset(seed=20)
    blocks3 = env3._observe().block_pose
    one = make_env(1)
    one.reset(seed=21)
    np.testing.assert_allclose(one._observe().block_pose[0], blocks3[1], atol=1e-6)
    assert info3["episode_seed"].tolist() == [20, 21, 22]
    assert not np.allclose(blocks3[0], blocks3[1])


def test_reset_subset_keeps_other_worlds(env3: PushTEnv) -> None:
    obs, _ = env3.reset(seed=0)
    for _ in range(3):
        obs, *_ = env3.step(hold(env3, obs))
    before = obs.block_pose.copy()
    obs, info = env3.reset(seed=100, options={"worlds": [1]})
    np.testing.assert_allclose(obs.block_pose[[0, 2]], before[[0, 2]], atol=1e-6)
    assert not np.allclose(obs.block_pose[1], before[1])
    assert env3.elapsed_steps.tolist() == [3, 0, 3]


def test_external_wrench_moves_only_its_block(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile(PUSHER_FAR, (3, 1))})
    wrench = np.zeros((3, 2, 6))
    wrench[1, 0, 0] = 2.0  # 2 N along +x on world 1's block for 0.1 s (friction holds ~1.2 N)
    wrench[2, 0, 5] = 0.1  # 0.1 N m about +z on world 2's block for 0.1 s
    for _ in range(1):
        obs, *_ = env3.step(hold(env3, obs), body_wrench=wrench)
    wrench[:] = 0.0
    for _ in range(3):  # wrench released: friction stops the blocks
        obs, *_ = env3.step(hold(env3, obs), body_wrench=wrench)
    settled = obs.block_pose.copy()
    obs, *_ = env3.step(hold(env3, obs))
    np.testing.assert_allclose(obs.block_pose, settled, atol=1e-3)
    assert abs(obs.block_pose[0, 0] - BLOCK[0]) < 1e-3
    assert 0.01 < obs.block_pose[1, 0] - BLOCK[0] < 0.10
    assert abs(obs.block_pose[1, 1] - BLOCK[1]) < 5e-3
    assert np.deg2rad(5) < obs.block_pose[2, 2] < np.pi / 2
    assert np.linalg.norm(obs.block_pose[2, :2] - BLOCK[:2]) < 0.01


def test_bad_actions_are_rejected_without_touching_the_batch(env3: PushTEnv) -> None:
    obs, _ = env3.reset(seed=3)
    steps = env3.elapsed_steps.copy()
    with pytest.raises(ValueError, match="shape"):
        env3.step(np.zeros((2, 2)))
    bad = obs.pusher_xy.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite.*\\[1\\]"):
        env3.step(bad)
    with pytest.raises(ValueError, match="non-finite"):
        env3.step(obs.pusher_xy, body_wrench=np.full((3, 2, 6), np.inf))
    assert env3.elapsed_steps.tolist() == steps.tolist()
    np.testing.assert_array_equal(env3._observe().block_pose, obs.block_pose)


def test_out_of_workspace_targets_are_clamped_and_reported(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile(PUSHER_FAR, (3, 1))})
    far = np.array([[5.0, 0.0], [0.40, 0.26], [0.40, -5.0]])
    for _ in range(30):
        obs, _, _, _, info = env3.step(far)
    assert info["action_clamped"].tolist() == [True, False, True]
    ws = env3.config.workspace
    assert np.all(obs.pusher_xy >= ws.low - 2e-3) and np.all(obs.pusher_xy <= ws.high + 2e-3)
    assert obs.pusher_xy[0, 0] == pytest.approx(ws.x_range_m[1], abs=3e-3)
    assert obs.pusher_xy[2, 1] == pytest.approx(ws.y_range_m[0], abs=3e-3)


def test_speed_and_joint_velocity_limits_hold(env3: PushTEnv) -> None:
    obs, _ = env3.reset(options={"block_pose": np.tile(BLOCK, (3, 1)), "pusher_xy": np.tile(PUSHER_FAR, (3, 1))})
    cfg = env3.config
    prev = obs
    for _ in range(6):
        obs, *_ = env3.step(np.tile([0.70, -0.28], (3, 1)))
        step_len = np.linalg.norm(obs.pusher_xy - prev.pusher_xy, axis=1)
        assert np.all(step_len <= cfg.robot.max_pusher_speed_m_s / cfg.control_hz + 1e-3)
        dq_max = env3.kinematics.dq_max * cfg.robot.velocity_limit_scale
        assert np.all(np.abs(obs.joint_vel) <= dq_max + 1e-9)
        assert np.all(obs.joint_pos >= env3.kinematics.q_min) and np.all(obs.joint_pos <= env3.kinematics.q_max)
        prev = obs


def test_success_and_reward_at_goal(env3: PushTEnv) -> None:
    goal = env3.goal_pose
    blocks = np.array([goal, goal + [0.002, 0, 0], goal + [0.05, 0, 0]])
    obs, info = env3.reset(options={"block_pose": blocks, "pusher_xy": np.tile(PUSHER_FAR, (3, 1))})
    obs, reward, terminated, truncated, info = env3.step(obs.pusher_xy)
    assert info["is_success"].tolist() == [True, True, False]
    assert terminated.tolist() == [True, True, False]
    assert reward[0] == pytest.approx(1.0) and reward[2] < 0.8
    assert not truncated.any()
    assert info["pos_error_m"][2] == pytest.approx(0.05, abs=3e-3)


def test_truncation_after_max_steps() -> None:
    env = make_env(1, max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    for k in range(3):
        obs, _, _, truncated, _ = env.step(obs.pusher_xy)
    assert truncated.tolist() == [True]


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        make_env(1).step(np.zeros((1, 2)))


def _cuda_devices() -> list[str]:
    import warp as wp

    return [d.alias for d in wp.get_cuda_devices()] if wp.is_cuda_available() else []


@pytest.mark.gpu
@pytest.mark.parametrize("device", _cuda_devices() or ["cuda:0"])
def test_cuda_matches_cpu(device: str) -> None:
    if device not in _cuda_devices():
        pytest.skip("no CUDA device")
    results = []
    for dev in ("cpu", device):
        env = make_env(2, device=dev)
        obs, _ = env.reset(options={"block_pose": np.tile(BLOCK, (2, 1)), "pusher_xy": np.tile([0.55, -0.20], (2, 1))})
        for _ in range(10):
            obs, *_ = env.step(obs.pusher_xy + [0.0, 0.01])
        results.append(obs.block_pose)
    np.testing.assert_allclose(results[0], results[1], atol=2e-3)


def test_step_joints_follows_joint_targets_under_limits() -> None:
    env = make_env(1)
    obs, _ = env.reset(options={"block_pose": [BLOCK], "pusher_xy": [PUSHER_FAR]})
    target = obs.joint_pos + np.array([0.05, -0.02, 0.0, 0.03, 0.0, 0.0, 0.1])
    obs, _, _, _, info = env.step_joints(target)
    np.testing.assert_allclose(obs.joint_pos, target, atol=1e-9)  # within one step's velocity limit
    far = obs.joint_pos + 1.0
    obs2, _, _, _, info = env.step_joints(far)
    assert info["joint_limit_clamped"].tolist() == [True]
    assert np.all(np.abs(obs2.joint_pos - obs.joint_pos) <= env.kinematics.dq_max * 0.5 * env.dt + 1e-9)
    np.testing.assert_allclose(obs2.pusher_xy, env.kinematics.tool_pose(obs2.joint_pos)[:, :2, 3], atol=1e-9)


def test_place_blocks_moves_a_block_between_steps_without_resetting_the_episode() -> None:
    env = PushTEnv(TwinConfig(num_worlds=2))
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.observe().pusher_xy)
    other = env.observe().block_pose[0].copy()
    obs = env.place_blocks(np.array([[0.6, -0.1, 0.4]]), worlds=np.array([1]))
    np.testing.assert_allclose(obs.block_pose[1], [0.6, -0.1, 0.4], atol=1e-6)
    np.testing.assert_allclose(obs.block_pose[0], other, atol=1e-9)
    assert env.elapsed_steps.tolist() == [3, 3]
    obs, *_ = env.step(obs.pusher_xy)  # at rest: stays
    np.testing.assert_allclose(obs.block_pose[1], [0.6, -0.1, 0.4], atol=1e-4)
    with pytest.raises(ValueError):
        env.place_blocks(np.array([[np.nan, 0.0, 0.0]]), worlds=np.array([0]))
    with pytest.raises(ValueError):
        env.place_blocks(np.zeros((1, 3)), worlds=np.array([2]))
