"""Run seeded PushT episodes of a policy in parallel twin worlds (one world per episode)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from tqdm import tqdm

from twin.config import TwinConfig
from twin.env import Observation, PushTEnv

from ..base import Policy

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
    "max_coverage", "steps", "pos_error_m", "yaw_error_rad"}], "wall_s"}``; an episode's figures are
    taken at the step it ended, ``max_coverage`` over its steps.
    """
    if not episode_seeds:
        raise ValueError("episode_seeds is empty")
    cfg = replace(twin_config, num_worlds=len(episode_seeds))
    env = PushTEnv(cfg)
    if policy is None:
        from ..expert import PushTExpert

        policy = PushTExpert(cfg)
    policy.reset()
    obs, info = env.reset(seed=list(episode_seeds))
    N = len(episode_seeds)
    active = np.ones(N, dtype=bool)
    final = {k: np.asarray(info[k], dtype=np.float64).copy() for k in ("coverage", "pos_error_m", "yaw_error_rad")}
    max_coverage = final["coverage"].copy()
    success = np.zeros(N, dtype=bool)
    steps = np.zeros(N, dtype=np.int64)
    t0 = time.perf_counter()
    step = 0
    bar = tqdm(total=cfg.max_episode_steps, desc="episodes", unit="step", disable=not progress, leave=False)
    try:
        while active.any():
            actions = policy.act(obs, active)
            pre, poses = obs, (env.body_poses() if record is not None else None)
            obs, _, terminated, truncated, info = env.step(actions)
            if record is not None:
                record(pre, poses, actions, info, active.copy())
            step += 1
            if after_step is not None:
                after_step(env, step)
                obs = env.observe()
            for k in final:
                final[k][active] = info[k][active]
            max_coverage[active] = np.maximum(max_coverage[active], info["coverage"][active])
            success[active] = terminated[active]
            steps[active] = env.elapsed_steps[active]
            active &= ~(terminated | truncated)
            bar.update(1)
            bar.set_postfix(done=f"{N - active.sum()}/{N}", success=int(success.sum()))
    finally:
        bar.close()
    per_episode = [
        {
            "seed": int(s),
            "success": bool(success[i]),
            "coverage": float(final["coverage"][i]),
            "max_coverage": float(max_coverage[i]),
            "steps": int(steps[i]),
            "pos_error_m": float(final["pos_error_m"][i]),
            "yaw_error_rad": float(final["yaw_error_rad"][i]),
        }
        for i, s in enumerate(episode_seeds)
    ]
    return {
        "success_rate": float(success.mean()),
        "mean_coverage": float(final["coverage"].mean()),
        "avg_max_coverage": float(max_coverage.mean()),
        "episodes": N,
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
