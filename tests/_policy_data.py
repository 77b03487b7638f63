"""Small datasets for the learned-policy tests: episodes in the dataset format `realsim collect` writes,
whose action is a known function of the observation (the pusher moves along a straight line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from launch.config import to_dict
from policies.dataset import DatasetSpec, DatasetWriter, pusht_features
from twin.config import TwinConfig

TINY_POLICY = ["policy.network.down_dims=[32,64]", "policy.network.time_embed_dim=32",
               "policy.chunking.horizon=8", "policy.chunking.n_action_steps=4"]


def line_episode(start_xy, step_xy, frames: int) -> list[dict[str, np.ndarray]]:
    """Frames of a pusher moving ``step_xy`` [m] per step from ``start_xy``; the action is the next
    position; the block sits still at the goal's side."""
    out = []
    for k in range(frames):
        p = np.asarray(start_xy, dtype=np.float64) + k * np.asarray(step_xy)
        block = np.array([0.55, 0.05, 0.3])
        keypoints = block[:2] + 0.03 * np.stack([np.cos(np.arange(8)), np.sin(np.arange(8))], axis=1)
        out.append({
            "observation.state": np.r_[p, np.zeros(7)], "observation.environment_state": np.r_[block, keypoints.ravel()],
            "action": p + np.asarray(step_xy), "next.reward": 0.5, "next.coverage": 0.4, "next.success": False,
            "next.done": k == frames - 1, "twin.body_poses": np.r_[block[:2], 0.02, 1.0, 0, 0, 0, p, 0.02, 1.0, 0, 0, 0],
            "twin.joint_pos": np.zeros(7), "twin.joint_vel": np.zeros(7), "twin.robot_joint_pos": np.zeros(7),
            "twin.correction_active": False, "control.by_operator": False,
        })
    return out


def write_line_dataset(root: Path, episodes: int = 2, frames: int = 24, success: tuple[bool, ...] | None = None) -> Path:
    """A dataset of ``episodes`` straight pushes (alternating directions and starts, so that an
    observation says which episode it is from) with ``meta/twin.json``."""
    twin = TwinConfig()
    meta = {"fps": twin.control_hz, "twin": to_dict(twin), "gaussians": {}}
    meta["twin"]["device"] = "cpu"
    writer = DatasetWriter(root, DatasetSpec(fps=twin.control_hz, features=pusht_features({})), twin_meta=meta)
    for e in range(episodes):
        start, step = ((0.45, 0.0), (0.004, 0.002)) if e % 2 == 0 else ((0.5, 0.1), (0.003, -0.003))
        for frame in line_episode(start, step, frames):
            writer.add_frame(frame, "push")
        writer.save_episode(success=None if success is None else success[e])
    return root
