"""Noise on the block a policy observes in a twin evaluation (`policies.evaluation.observation_noise`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from policies.base import Policy
from policies.evaluation.observation_noise import NoisyObservations, ObservationNoiseConfig
from twin.config import TwinConfig
from twin.env import Observation, PushTEnv
from twin.pusht import block_keypoints
from twin.transforms import quat_wxyz_to_yaw, wrap_angle


class _Recorder(Policy):
    """Holds the pusher and keeps every observation it was given."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def reset(self, worlds=None, seeds=None) -> None:  # noqa: ANN001
        pass

    def act(self, obs: Observation, active=None) -> np.ndarray:  # noqa: ANN001
        self.seen.append(obs)
        return obs.pusher_xy.copy()


def _observe(worlds: int, seeds: list[int]) -> Observation:
    env = PushTEnv(replace(TwinConfig(), num_worlds=worlds))
    obs, _ = env.reset(seed=seeds)
    return obs


def _noise_of(config: ObservationNoiseConfig, steps: int) -> tuple[NoisyObservations, _Recorder, Observation, np.ndarray]:
    """Two worlds (seeds 1000, 1001) observed ``steps`` times through the noise: the wrapper, the policy it
    wraps, the exact observation and the offsets it saw [steps, 2, 3] (yaw wrapped)."""
    obs, inner = _observe(2, [1000, 1001]), _Recorder()
    noisy = NoisyObservations(inner, replace(TwinConfig(), num_worlds=2), config)
    noisy.reset(seeds=np.array([1000, 1001]))
    for _ in range(steps):
        noisy.act(obs)
    offsets = np.stack([o.block_pose - obs.block_pose for o in inner.seen])
    offsets[..., 2] = wrap_angle(offsets[..., 2])
    return noisy, inner, obs, offsets


def test_the_noise_has_the_configured_size_and_the_observation_stays_consistent() -> None:
    twin = replace(TwinConfig(), num_worlds=2)
    noisy, inner, obs, offsets = _noise_of(ObservationNoiseConfig(position_m=0.002, yaw_rad=0.01), 2000)
    np.testing.assert_allclose(offsets[..., :2].std(axis=0), 0.002, rtol=0.08)
    np.testing.assert_allclose(offsets[..., 2].std(axis=0), 0.01, rtol=0.08)
    assert abs(np.corrcoef(offsets[1:, 0, 0], offsets[:-1, 0, 0])[0, 1]) < 0.1  # independent from step to step
    last = inner.seen[-1]
    np.testing.assert_allclose(last.keypoints, block_keypoints(twin.block, last.block_pose), atol=1e-12)
    np.testing.assert_allclose(last.body_poses[:, 0, :2], last.block_pose[:, :2], atol=1e-6)
    np.testing.assert_allclose(wrap_angle(quat_wxyz_to_yaw(last.body_poses[:, 0, 3:]) - last.block_pose[:, 2]), 0, atol=1e-6)
    np.testing.assert_array_equal(last.pusher_xy, obs.pusher_xy)  # only the block is estimated
    assert not np.shares_memory(last.body_poses, obs.body_poses)


def test_a_worlds_noise_follows_its_episode_seed_not_its_batch() -> None:
    config = ObservationNoiseConfig()
    single, batch = _Recorder(), _Recorder()
    one = NoisyObservations(single, replace(TwinConfig(), num_worlds=1), config)
    three = NoisyObservations(batch, replace(TwinConfig(), num_worlds=3), config)
    one.reset(seeds=np.array([1007]))
    three.reset(seeds=np.array([1005, 1006, 1007]))
    obs1, obs3 = _observe(1, [1007]), _observe(3, [1005, 1006, 1007])
    for _ in range(5):
        one.act(obs1)
        three.act(obs3, active=np.array([True, False, True]))  # an idle world draws nothing
    for a, b in zip(single.seen, batch.seen):
        np.testing.assert_array_equal(a.block_pose[0], b.block_pose[2])
        np.testing.assert_allclose(b.block_pose[1], obs3.block_pose[1], atol=1e-12)
    three.reset(worlds=np.array([2]), seeds=np.array([1007]))  # a new episode there starts the stream again
    three.act(obs3)
    np.testing.assert_array_equal(batch.seen[-1].block_pose[2], single.seen[0].block_pose[0])


def test_no_noise_leaves_the_observation_as_it_is_and_bad_sizes_are_refused() -> None:
    inner = _Recorder()
    obs = _observe(1, [3])
    NoisyObservations(inner, TwinConfig(num_worlds=1), ObservationNoiseConfig(0.0, 0.0)).act(obs)
    np.testing.assert_array_equal(inner.seen[0].block_pose, obs.block_pose)
    np.testing.assert_allclose(inner.seen[0].keypoints, obs.keypoints, atol=1e-12)
    assert not ObservationNoiseConfig(0.0, 0.0).enabled and ObservationNoiseConfig().enabled
    with pytest.raises(ValueError, match=">= 0"):
        ObservationNoiseConfig(position_m=-0.001)


def test_correlated_noise_keeps_its_size_and_persists_as_configured() -> None:
    """``correlation_steps`` = 5: every step's error has the configured spread, successive errors correlate
    by exp(-k / 5) at lag k, and a new episode starts the process afresh (its first error as an
    independent one's)."""
    config = ObservationNoiseConfig(position_m=0.002, yaw_rad=0.01, correlation_steps=5.0)
    twin = replace(TwinConfig(), num_worlds=2)
    noisy, inner, obs, offsets = _noise_of(config, 20000)
    np.testing.assert_allclose(offsets[..., :2].std(axis=0), 0.002, rtol=0.1)
    np.testing.assert_allclose(offsets[..., 2].std(axis=0), 0.01, rtol=0.1)
    x = offsets[:, 0, 0]
    for lag in (1, 5, 10):
        assert abs(np.corrcoef(x[lag:], x[:-lag])[0, 1] - np.exp(-lag / 5)) < 0.05
    independent = _Recorder()
    plain = NoisyObservations(independent, twin, replace(config, correlation_steps=0.0))
    plain.reset(seeds=np.array([1000, 1001]))
    plain.act(obs)
    noisy.reset(worlds=np.array([0, 1]), seeds=np.array([1000, 1001]))
    noisy.act(obs)
    np.testing.assert_array_equal(inner.seen[-1].block_pose, independent.seen[0].block_pose)
    with pytest.raises(ValueError, match=">= 0"):
        ObservationNoiseConfig(correlation_steps=-1.0)
