"""The twin evaluation's episode rules: episodes end and are judged as `realsim deploy` ends and judges a live
episode (`policies.evaluation.rules`), or by gym-pusht's first reach."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from policies.base import Policy
from policies.evaluation.batched import BatchEvaluator
from policies.evaluation.job import EvaluateConfig
from policies.evaluation.observation_noise import ObservationNoiseConfig
from policies.evaluation.rules import LiveEpisodeEnd
from twin.config import TwinConfig
from twin.env import Observation, PushTEnv
from twin.live.config import EpisodeRules
from twin.live.rules import SuccessWindow
from twin.pusht import coverage
from twin.state import TwinState

TWIN = TwinConfig()
GOAL = np.array([TWIN.goal.x_m, TWIN.goal.y_m, TWIN.goal.yaw_rad])
FAR = np.array([0.40, -0.25])  # a pusher position well away from a block at the goal


def _obs(block_xyyaw: np.ndarray, pusher_xy: np.ndarray) -> Observation:
    W = len(block_xyyaw)
    return Observation(pusher_xy=np.asarray(pusher_xy, dtype=float), block_pose=np.asarray(block_xyyaw, dtype=float),
                       keypoints=np.zeros((W, 8, 2)), joint_pos=np.zeros((W, 7)), joint_vel=np.zeros((W, 7)))


def _at_goal(twin: TwinConfig) -> TwinState:
    """A start state of ``twin`` with the block resting exactly at the goal."""
    env = PushTEnv(replace(twin, num_worlds=1))
    env.reset(seed=0, options={"block_pose": GOAL[None]})
    return env.get_state(0)


def test_the_window_fires_as_the_live_loops_does_and_touching_restarts_it() -> None:
    """World 0 rests at the goal with the pusher away; world 1 is touched at step 3; world 2's mean stays
    below goal + margin. Each world's verdict equals the live loop's SuccessWindow fed the same steps."""
    rules = EpisodeRules()
    end = LiveEpisodeEnd(rules, TWIN, 0.003, 3)
    block = np.tile(GOAL, (3, 1))
    away = np.tile(FAR, (3, 1))
    windows = [SuccessWindow(TWIN.goal.success_coverage + rules.success_margin, rules.success_hold_steps) for _ in range(3)]
    fired_at = {}
    for step in range(1, 12):
        pusher_after = away.copy()
        if step == 3:
            pusher_after[1] = GOAL[:2]  # the pusher's path crosses world 1's block
        coverage = np.array([0.98, 0.98, 0.96])
        fired, diverged = end.update(_obs(block, away), _obs(block, pusher_after), coverage, np.ones(3, bool))
        assert not diverged.any()
        for w in range(3):
            expect = windows[w].update(coverage[w], confirmed=not (w == 1 and step == 3))
            assert fired[w] == expect, (step, w)
            if expect and w not in fired_at:
                fired_at[w] = step
    assert fired_at == {0: rules.success_hold_steps, 1: 3 + rules.success_hold_steps}


def test_a_block_outside_the_workspace_or_a_non_finite_state_ends_the_episode() -> None:
    rules = EpisodeRules()
    end = LiveEpisodeEnd(rules, TWIN, 0.003, 3)
    outside = np.array([TWIN.workspace.x_range_m[1] + rules.max_outside_m + 0.01, 0.0, 0.0])
    block = np.stack([outside, outside, GOAL])
    active = np.array([True, False, True])
    for step in range(1, rules.outside_steps + 1):
        after = block.copy()
        if step == 2:
            after[2, 0] = np.nan
        _, diverged = end.update(_obs(block, np.tile(FAR, (3, 1))), _obs(after, np.tile(FAR, (3, 1))), np.zeros(3), active)
        assert diverged[0] == (step >= rules.outside_steps), step  # outside for outside_steps steps in a row
        assert not diverged[1]  # an idle world is never judged
        assert diverged[2] == (step == 2)


class _PushAlongX(Policy):
    """Drives the pusher along +x, through a block that starts at the goal and out of it."""

    def reset(self, worlds=None, seeds=None) -> None:  # noqa: ANN001
        pass

    def act(self, obs: Observation, active=None) -> np.ndarray:  # noqa: ANN001
        return obs.pusher_xy + np.array([0.1, 0.0])


def test_a_policy_that_pushes_the_block_out_of_the_goal_fails_under_the_live_rules_only() -> None:
    """The block starts at the goal: gym-pusht's rule scores the first step a success; by the live rules
    the pusher reaches the block before the window fills (hold 10 steps), pushes it away, and the episode
    ends at the time limit with the block out of the goal: a failure, as on the robot."""
    twin = replace(TWIN, max_episode_steps=40)
    start = _at_goal(twin)
    evaluator = BatchEvaluator(twin, 2)
    config = EvaluateConfig(rules=replace(EpisodeRules(), success_hold_steps=10))
    reach, _ = evaluator.run(_PushAlongX(), [1000, 1001], start)
    live, _ = evaluator.run(_PushAlongX(), [1000, 1001], start, live_end=config.live_end(evaluator.config))
    for r in reach:
        assert r["success"] and r["end"] == "success" and r["steps"] == 1 and r["reached"]
    for r in live:
        assert not r["success"] and r["end"] == "time limit" and r["steps"] == 40
        assert r["reached"] and r["coverage"] < 0.5  # it was at the goal, and left it
    assert EvaluateConfig(episode_end="first_reach").live_end(twin) is None
    with pytest.raises(ValueError, match="episode_end"):
        EvaluateConfig(episode_end="last")


def test_a_block_held_at_the_goal_succeeds_under_both_rules() -> None:
    twin = replace(TWIN, max_episode_steps=20)
    start = _at_goal(twin)

    class Hold(_PushAlongX):
        def act(self, obs: Observation, active=None) -> np.ndarray:  # noqa: ANN001
            return obs.pusher_xy.copy()

    evaluator = BatchEvaluator(twin, 1)
    (live,), _ = evaluator.run(Hold(), [1000], start, live_end=EvaluateConfig().live_end(evaluator.config))
    assert live["success"] and live["end"] == "goal held" and live["steps"] == EpisodeRules().success_hold_steps


class _Seen(Policy):
    """Holds the pusher and keeps the block pose it was given at every step."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def reset(self, worlds=None, seeds=None) -> None:  # noqa: ANN001
        pass

    def act(self, obs: Observation, active=None) -> np.ndarray:  # noqa: ANN001
        self.blocks.append(obs.block_pose.copy())
        return obs.pusher_xy.copy()


class _Window(LiveEpisodeEnd):
    """The live rules, keeping the coverage their success window was given at every step."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.given: list[np.ndarray] = []

    def update(self, before, after, coverage, active):  # noqa: ANN001, ANN201
        self.given.append(np.asarray(coverage, dtype=float).copy())
        return super().update(before, after, coverage, active)


def test_live_belief_ends_on_the_block_as_the_policy_sees_it_and_judges_the_exact_one() -> None:
    """A block at rest at the goal. Under "live" the window reads the exact coverage and fires after
    success_hold_steps; under "live_belief", with an estimate 15 mm / 6 degrees off, the window reads the
    coverage of the very pose the policy is given next (one draw per step, shared), never fires, and the
    episode, at the time limit, is judged a success on the exact block."""
    twin = replace(TWIN, max_episode_steps=12)
    start = _at_goal(twin)
    evaluator = BatchEvaluator(twin, 2)
    runs = {}
    for end in ("live", "live_belief"):
        config = EvaluateConfig(episode_end=end, observation_noise=ObservationNoiseConfig(position_m=0.015, yaw_rad=0.1))
        inner, windows = _Seen(), []

        def rules(worlds: int, _end: str = end) -> _Window:
            windows.append(_Window(config.rules, evaluator.config, config.contact_margin_m, worlds, _end == "live_belief"))
            return windows[-1]

        results, _ = evaluator.run(config.observed(inner, evaluator.config), [1000, 1001], start, live_end=rules)
        runs[end] = (results, inner.blocks, windows[0].given)
    exact, seen_exact, _ = runs["live"]
    belief, seen_belief, given = runs["live_belief"]
    for r in exact:
        assert r["success"] and r["end"] == "goal held" and r["steps"] == EpisodeRules().success_hold_steps
    for r in belief:
        assert r["success"] and r["end"] == "time limit" and r["steps"] == 12 and r["coverage"] > 0.99
    # the policy saw the same noisy blocks either way (one draw per step, whichever rule)
    np.testing.assert_array_equal(np.stack(seen_exact), np.stack(seen_belief[:len(seen_exact)]))
    assert np.abs(np.stack(seen_belief)[:, :, :2] - GOAL[:2]).max() > 0.01
    for k in range(len(given) - 1):  # the window after step k read the pose the policy acted on at step k + 1
        np.testing.assert_allclose(given[k], coverage(twin.block, seen_belief[k + 1], twin.goal.pose), atol=1e-12)
    assert max(float(g.mean()) for g in given) < EpisodeRules().success_margin + twin.goal.success_coverage


def test_live_belief_with_exact_observations_is_live() -> None:
    assert EvaluateConfig(episode_end="live_belief").live_end(TWIN)(2).on_belief
    assert not EvaluateConfig().live_end(TWIN)(2).on_belief
    twin = replace(TWIN, max_episode_steps=20)
    start = _at_goal(twin)
    evaluator = BatchEvaluator(twin, 2)
    exact = ObservationNoiseConfig(position_m=0.0, yaw_rad=0.0)
    out = [evaluator.run(_Seen(), [1000, 1001], start, live_end=EvaluateConfig(episode_end=e, observation_noise=exact)
                         .live_end(evaluator.config))[0] for e in ("live", "live_belief")]
    assert out[0] == out[1] and out[0][0]["end"] == "goal held"
