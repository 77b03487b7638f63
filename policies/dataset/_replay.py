"""Replay of a recorded episode's actions in a fresh twin (open loop, no visual forces)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["replay_episode"]


def replay_episode(reader, episode: int, twin_config) -> dict[str, Any]:  # noqa: ANN001
    """Reset a one-world ``PushTEnv`` to the episode's first recorded state (block pose, joints), step it
    through the recorded actions and compare its block with the recorded one at every step.

    Returns ``steps``, per-step errors ``pos_err_m`` [T-1] / ``yaw_err_rad`` [T-1] (replayed state after
    step t vs recorded state before step t+1), their final and median values, and the coverages.
    The live twin was corrected from cameras while recording, so the errors measure how much the
    correction (and the real scene) moved the block beyond the twin's own prediction.
    """
    from dataclasses import replace

    from twin.env import PushTEnv

    data = reader.episode(episode)
    T = len(data["index"])
    env = PushTEnv(replace(twin_config, num_worlds=1, device="cpu", max_episode_steps=max(T, 1) + 1))
    block0 = data["observation.environment_state"][0, :3].astype(np.float64)
    env.reset(seed=0, options={"block_pose": block0[None], "joint_pos": data["twin.joint_pos"][:1]})
    blocks = []
    cov = 0.0
    for t in range(T):
        obs, _, _, _, info = env.step(data["action"][t : t + 1].astype(np.float64))
        blocks.append(obs.block_pose[0])
        cov = float(info["coverage"][0])
    blocks = np.asarray(blocks)
    rec = data["observation.environment_state"][:, :3].astype(np.float64)
    if T < 2:
        raise ValueError(f"episode {episode} has {T} frame(s): nothing to compare")
    # the replayed state after step t against the recorded state before step t + 1
    pos = np.linalg.norm(blocks[:-1, :2] - rec[1:, :2], axis=1)
    yaw = np.abs((blocks[:-1, 2] - rec[1:, 2] + np.pi) % (2 * np.pi) - np.pi)
    return {"steps": T, "pos_err_m": pos, "yaw_err_rad": yaw, "final_pos_err_mm": float(pos[-1] * 1e3),
            "final_yaw_err_deg": float(np.rad2deg(yaw[-1])), "median_pos_err_mm": float(np.median(pos) * 1e3),
            "final_coverage": cov, "recorded_coverage": float(data["next.coverage"][-1, 0])}
