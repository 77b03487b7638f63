"""The scripted PushT expert solves seeded episodes in the twin."""

from __future__ import annotations

import numpy as np
import pytest

from policies.evaluate import run_episodes
from policies.expert import ExpertConfig, PushTExpert
from twin.config import TwinConfig
from twin.env import PushTEnv


def test_expert_solves_a_small_seeded_set() -> None:
    result = run_episodes(TwinConfig(), episode_seeds=[0, 1, 2, 3])
    assert result["episodes"] == 4
    assert result["success_rate"] >= 0.75, result["per_episode"]
    for ep in result["per_episode"]:
        if ep["success"]:
            assert ep["coverage"] >= 0.95 and ep["steps"] <= 300


@pytest.mark.slow
def test_expert_success_rate_on_twenty_episodes() -> None:
    result = run_episodes(TwinConfig(), episode_seeds=list(range(100, 120)))
    assert result["success_rate"] >= 0.8, result["per_episode"]


def test_expert_actions_stay_clear_of_the_block_while_travelling() -> None:
    cfg = TwinConfig(num_worlds=1)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(options={"block_pose": [[0.55, 0.0, 0.3]], "pusher_xy": [[0.40, 0.25]]})
    first = expert.act(obs)
    assert first.shape == (1, 2) and np.all(np.isfinite(first))
    travel = expert._plans[0][0].points if expert._plans[0] else None
    assert travel is not None
    import shapely

    from twin.pusht import block_keypoints

    poly = shapely.Polygon(block_keypoints(cfg.block, obs.block_pose)[0])
    line = shapely.LineString(travel)
    assert line.distance(poly) >= cfg.physics.pusher_radius_m  # travel never sweeps through the block


def test_inactive_worlds_hold_position() -> None:
    cfg = TwinConfig(num_worlds=2)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(seed=0)
    actions = expert.act(obs, active=np.array([False, True]))
    np.testing.assert_array_equal(actions[0], obs.pusher_xy[0])
    assert not expert._plans[0] and expert._plans[1]


def test_expert_plans_again_when_the_block_is_moved_under_it() -> None:
    """A nudge (or a live twin's correction) moves the block while the pusher travels: the plan made for
    the old pose is dropped and the next push is planned for the new one."""
    cfg = TwinConfig(num_worlds=1)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(options={"block_pose": [[0.55, 0.0, 0.3]], "pusher_xy": [[0.40, 0.25]]})
    expert.act(obs)
    obs, *_ = env.step(expert.act(obs))
    assert expert.replans == 0 and len(expert._plans[0]) == 2  # still travelling to its push
    obs = env.place_blocks(np.array([[0.60, -0.05, 0.3]]))
    expert.act(obs)
    assert expert.replans == 1
    np.testing.assert_allclose(expert._plan_pose[0], [0.60, -0.05, 0.3], atol=1e-6)
