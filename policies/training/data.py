"""Training windows from a dataset: for each frame, the last ``n_obs_steps`` observations and the
``horizon`` actions from the window's first step on (clamped to the episode: its first observation
repeated before the start, its last action repeated after the end, as the policy pads at run time).

Reads any dataset in LeRobot's v3 layout (a realsim dataset or another with the same features),
selecting the policy's inputs by element name (`policies.learned.features`). Image inputs are rendered
from the dataset's stored twin states (``twin.body_poses``, ``twin.joint_pos``) by the renderer the
policy uses at run time (`policies.learned.images`), and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from policies.dataset import DatasetError, DatasetReader
from policies.learned.config import PolicyConfig
from policies.learned.features import ACTION_KEY

if TYPE_CHECKING:
    from twin.config import TwinConfig

__all__ = ["ChunkWindows", "load_windows"]


@dataclass
class ChunkWindows:
    """All frames of the chosen episodes, in memory.

    Attributes:
        state: [F, S] float32, the policy's state features per frame.
        actions: [F, 2] float32, pusher targets (x, y) [m], world frame.
        first, last: [F] int64, the first and last frame index of each frame's episode.
        episodes: the dataset episode indices used.
        images: view name -> uint8 RGB [F, H, W, 3] (image policies).
    """

    state: torch.Tensor
    actions: torch.Tensor
    first: np.ndarray
    last: np.ndarray
    episodes: list[int]
    images: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.state)

    def window(self, frames: np.ndarray, n_obs_steps: int, horizon: int
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(state [B, n_obs_steps, S], actions [B, horizon, 2], images name -> [B, n_obs_steps, H, W, 3])
        of the windows ending at ``frames`` [B]."""
        frames = np.asarray(frames, dtype=np.int64)
        start = frames - (n_obs_steps - 1)
        obs_idx = torch.from_numpy(np.maximum(start[:, None] + np.arange(n_obs_steps), self.first[frames][:, None]))
        act_idx = np.clip(start[:, None] + np.arange(horizon), self.first[frames][:, None], self.last[frames][:, None])
        return (self.state[obs_idx], self.actions[torch.from_numpy(act_idx)],
                {k: v[obs_idx] for k, v in self.images.items()})

    def ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(state min, state max, action min, action max) over the frames: the normalisation ranges."""
        s, a = self.state.numpy(), self.actions.numpy()
        return s.min(0), s.max(0), a.min(0), a.max(0)


def load_windows(root: str | Path, config: PolicyConfig, only_successful: bool = False, twin: "TwinConfig | None" = None,
                 cache_dir: str | Path | None = None, device: str = "cpu", progress: bool = False) -> ChunkWindows:
    """Read the frames the policy trains on. Raises ``DatasetError`` for an empty dataset, a dataset
    without the policy's features, or no episode left after filtering.

    Image policies need ``twin`` (the scene to render) and the dataset's ``twin.body_poses`` and
    ``twin.joint_pos``; renders are cached under ``cache_dir`` (one ``.npy`` per view, keyed by the
    dataset's frames, the view and the twin) when given, rendered on ``device``."""
    reader = DatasetReader(root)
    if reader.num_episodes == 0:
        raise DatasetError(f"{reader.root} holds no episodes")
    feats = reader.spec.features
    columns = []
    for f in config.observation.state:
        if f.key not in feats:
            raise DatasetError(f"{reader.root} has no feature {f.key!r} (the policy reads {f.names}); "
                               f"it has {sorted(feats)}")
        try:
            columns.append(f.columns(feats[f.key].names))
        except ValueError as exc:
            raise DatasetError(f"{reader.root}: {exc}") from exc
    if ACTION_KEY not in feats or feats[ACTION_KEY].shape != (2,):
        raise DatasetError(f"{reader.root} has no action of shape (2,) (pusher target x, y)")
    images = bool(config.observation.images)
    if images and twin is None:
        raise ValueError("an image policy's training data needs the twin's config (twin=...) to render its views")
    if images and not {"twin.body_poses", "twin.joint_pos"} <= set(feats):
        raise DatasetError(f"{reader.root} stores no twin states (twin.body_poses, twin.joint_pos): its images "
                           f"cannot be rendered for an image policy")
    states, actions, firsts, lasts, used, poses, joints = [], [], [], [], [], [], []
    n = 0
    for e in range(reader.num_episodes):
        data = reader.episode(e)
        if only_successful and not reader.episode_success(e):
            continue
        T = len(data[ACTION_KEY])
        states.append(np.concatenate([data[f.key][:, cols] for f, cols in zip(config.observation.state, columns)], axis=1))
        actions.append(data[ACTION_KEY])
        if images:
            poses.append(data["twin.body_poses"])
            joints.append(data["twin.joint_pos"])
        firsts.append(np.full(T, n))
        lasts.append(np.full(T, n + T - 1))
        used.append(e)
        n += T
    if not used:
        raise DatasetError(f"{reader.root}: no episode left to train on (only_successful={only_successful})")
    rendered = {}
    if images:
        rendered = _render_cached(np.concatenate(poses), np.concatenate(joints), config, twin, cache_dir, device, progress)
    return ChunkWindows(torch.from_numpy(np.concatenate(states).astype(np.float32)),
                        torch.from_numpy(np.concatenate(actions).astype(np.float32)),
                        np.concatenate(firsts), np.concatenate(lasts), used, rendered)


def _render_cached(poses: np.ndarray, joints: np.ndarray, config: PolicyConfig, twin: "TwinConfig",
                   cache_dir: str | Path | None, device: str, progress: bool) -> dict[str, torch.Tensor]:
    from dataclasses import asdict, replace

    from tqdm import tqdm

    from policies.learned.images import ObservationRenderer

    scene = json.dumps(asdict(replace(twin, device="cpu", num_worlds=1)), sort_keys=True, default=str)
    if config.observation.scene_path:  # a scanned scene: its manifest (bodies, counts, time written) keys the cache
        manifest = Path(config.observation.scene_path)
        scene += (manifest / "scene.json" if manifest.is_dir() else manifest).read_text()
    key = hashlib.sha256(poses.tobytes() + joints.tobytes() + scene.encode()).hexdigest()[:16]
    out, todo = {}, []
    for view in config.observation.images:
        view_key = hashlib.sha256((key + json.dumps(asdict(view), sort_keys=True)).encode()).hexdigest()[:16]
        path = None if cache_dir is None else Path(cache_dir) / f"{view.serial}-{view_key}.npy"
        if path is not None and path.is_file():
            out[view.serial] = torch.from_numpy(np.load(path))
        else:
            todo.append((view, path))
    if todo:
        renderer = ObservationRenderer(twin, tuple(v for v, _ in todo), device=device,
                                       scene_path=config.observation.scene_path)
        parts: dict[str, list[np.ndarray]] = {v.serial: [] for v, _ in todo}
        step = 256
        for start in tqdm(range(0, len(poses), step), desc="rendering views", unit="x256 frames", disable=not progress):
            for name, img in renderer.render(poses[start:start + step], joints[start:start + step]).items():
                parts[name].append(img)
        for view, path in todo:
            arr = np.concatenate(parts[view.serial])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp.npy")
                np.save(tmp, arr)
                tmp.replace(path)
            out[view.serial] = torch.from_numpy(arr)
    return out
