"""Run seeded PushT episodes of a policy in parallel twin worlds (one world per episode)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from twin.config import TwinConfig
from twin.env import Observation, PushTEnv

from ..base import Policy
from .batched import BatchEvaluator

__all__ = ["nudge_blocks", "run_episodes"]


def run_episodes(
    twin_config: TwinConfig,
    episode_seeds: list[int],
    policy: Policy | None = None,
    progress: bool = False,
    after_step: Callable[[PushTEnv, int], None] | None = None,
    record: Callable[[Observation, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Run one episode per seed, all in parallel worlds, until success or ``max_episode_steps``.

    ``policy`` defaults to the scripted expert. ``after_step(env, step)`` is called after every step
    (disturbances, e.g. a nudge of the blocks at a given step). ``record(obs, body_poses, actions, info,
    active)`` sees every step: the observation and body poses [N, 2, 7] the actions [N, 2] were taken
    from, the step's ``info``, and which worlds were still running. Returns ``{"success_rate",
    "mean_coverage", "avg_max_coverage", "episodes", "per_episode": [{"seed", "success", "coverage",
    "max_coverage", "steps", "sum_reward", "max_reward", "pos_error_m", "yaw_error_rad"}], "wall_s"}``; an
    episode's figures are taken at the step it ended, ``max_*`` and ``sum_reward`` over its steps.
    """
    if not episode_seeds:
        raise ValueError("episode_seeds is empty")
    evaluator = BatchEvaluator(twin_config, len(episode_seeds))
    if policy is None:
        from ..expert import PushTExpert

        policy = PushTExpert(evaluator.config)
    t0 = time.perf_counter()
    with tqdm(total=len(episode_seeds), desc="episodes", unit="ep", disable=not progress, leave=False) as bar:
        def on_step(_: int, finished: np.ndarray, success: np.ndarray) -> None:
            bar.n = int(finished.sum())
            bar.set_postfix(success=int((finished & success).sum()), refresh=False)
            bar.refresh()

        per_episode, _ = evaluator.run(policy, list(episode_seeds), on_step=on_step, after_step=after_step, record=record)
    success = np.array([e["success"] for e in per_episode])
    return {
        "success_rate": float(success.mean()),
        "mean_coverage": float(np.mean([e["coverage"] for e in per_episode])),
        "avg_max_coverage": float(np.mean([e["max_coverage"] for e in per_episode])),
        "episodes": len(per_episode),
        "per_episode": per_episode,
        "wall_s": time.perf_counter() - t0,
    }


def nudge_blocks(env: PushTEnv, distance_m: float, directions_rad: np.ndarray) -> None:
    """Move every world's block ``distance_m`` [m] towards ``directions_rad`` [N] (world frame, from +x
    towards +y), the centres kept where blocks start (``WorkspaceConfig.clip_block_centres``): 'a person'
    nudging the blocks, as a disturbance for ``run_episodes``' ``after_step``."""
    ang = np.asarray(directions_rad, dtype=np.float64).reshape(env.num_worlds)
    poses = env.observe().block_pose + distance_m * np.c_[np.cos(ang), np.sin(ang), np.zeros(env.num_worlds)]
    poses[:, :2] = env.config.workspace.clip_block_centres(poses[:, :2])
    env.place_blocks(poses)
