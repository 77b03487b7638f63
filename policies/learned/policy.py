"""A learned chunking policy behind the jobs' `policies.base.Policy` interface, batched over N worlds.

Per world it keeps the last ``n_obs_steps`` observations (the first one repeated at an episode's start)
and a queue of actions: when an active world's queue is empty, the worlds that need one get a chunk in
one batched prediction, and ``n_action_steps`` of it (from the current step on) are queued. A reset of a
world clears only that world's history and queue.

    policy = LearnedPolicy.from_pretrained("runs/train/flow/checkpoints/last")
    policy.reset()
    targets = policy.act(obs)        # [N, 2] pusher targets (x, y) [m], world frame
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..base import Policy, reset_indices
from .checkpoint import load_pretrained, save_pretrained
from .features import observation_values
from .traced import TracedDenoiser

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

    from .model import ChunkModel

__all__ = ["LearnedPolicy"]


class LearnedPolicy(Policy):
    """Runs a `model.ChunkModel` on the twin's observations.

    Args:
        model: the chunk model (eval mode is set here).
        seed: seed of the sampling noise: each world draws its noise from a generator of its own, reset
            with the world's episode seed when ``reset`` is given one (from ``(seed, episode seed)``: an
            episode's actions are the same in any batch), else seeded ``seed + w`` for world ``w``; the
            same seeds and observations give the same actions.
        device: where the model runs ("cpu", "cuda").
        twin: the twin whose observations it acts on; image policies render their views of it
            (`images.ObservationRenderer`) and need it.

    Image policies keep each world's last ``n_obs_steps`` twin states and render them only when the
    world needs a new chunk (one batched render for all such worlds).
    """

    def __init__(self, model: "ChunkModel", seed: int = 0, device: str | None = None,
                 twin: "TwinConfig | None" = None) -> None:
        self.device = device or next(model.parameters()).device.type
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.seed = seed
        self._generators: list[torch.Generator] = []
        self._episode_seeds: list[int] | None = None  # per world, from the last reset of all worlds
        self._history: list[deque[np.ndarray]] = []
        self._queues: list[deque[np.ndarray]] = []
        self.predictions = 0  #: chunks predicted since construction (all worlds)
        self.renderer = None
        self._denoiser = TracedDenoiser(self.model.net)  # the same weights, less per-call overhead
        if twin is not None:
            self.set_twin_config(twin)

    def set_twin_config(self, config: "TwinConfig") -> None:
        """The twin changed (e.g. the block was measured): image views are rendered of the new one."""
        if self.config.observation.images:
            from .images import ObservationRenderer

            self.renderer = ObservationRenderer(config, self.config.observation.images, device=self.device,
                                                scene_path=self.config.observation.scene_path)

    @classmethod
    def from_pretrained(cls, directory: str | Path, seed: int = 0, device: str = "cpu",
                        twin: "TwinConfig | None" = None) -> "LearnedPolicy":
        """Load a checkpoint directory (raises `checkpoint.CheckpointError` with the reason)."""
        return cls(load_pretrained(directory, device=device), seed=seed, device=device, twin=twin)

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_pretrained(self.model, directory)

    def _resize(self, n: int) -> None:
        if len(self._history) != n:
            self._history = [deque(maxlen=self.config.chunking.n_obs_steps) for _ in range(n)]
            self._queues = [deque() for _ in range(n)]
            seeds = self._episode_seeds if self._episode_seeds is not None and len(self._episode_seeds) == n else None
            self._generators = [torch.Generator().manual_seed(self._noise_seed(w, None if seeds is None else seeds[w]))
                                for w in range(n)]

    def _noise_seed(self, world: int, episode_seed: int | None) -> int:
        if episode_seed is None:
            return self.seed + int(world)
        return int(np.random.SeedSequence([self.seed, int(episode_seed)]).generate_state(1, dtype=np.uint64)[0] >> 1)

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        if worlds is None:
            self._history, self._queues, self._generators = [], [], []
            self._episode_seeds = None if seeds is None else [int(s) for s in np.asarray(seeds).reshape(-1)]
            return
        idx = reset_indices(worlds)
        seeds = None if seeds is None else np.asarray(seeds).reshape(-1)
        if seeds is not None and len(seeds) != len(idx):
            raise ValueError(f"{len(seeds)} seeds for {len(idx)} reset worlds")
        for i, w in enumerate(idx):
            if w < len(self._history):
                self._history[w].clear()
                self._queues[w].clear()
                self._generators[w].manual_seed(self._noise_seed(w, None if seeds is None else seeds[i]))

    def queued(self, world: int) -> int:
        """Actions still queued for ``world``."""
        return len(self._queues[world]) if world < len(self._queues) else 0

    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        n = obs.pusher_xy.shape[0]
        self._resize(n)
        active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).reshape(n)
        values = observation_values(self.config.observation.state, obs)  # [N, S]
        images = bool(self.config.observation.images)
        if images and (obs.body_poses is None or self.renderer is None):
            raise ValueError("an image policy needs the twin's body poses in its observations and the twin's "
                             "config (LearnedPolicy(..., twin=...))")
        out = np.asarray(obs.pusher_xy, dtype=np.float64).copy()  # inactive worlds hold
        need = []
        for w in np.flatnonzero(active):
            hist = self._history[w]
            entry = (values[w], obs.body_poses[w].copy(), obs.joint_pos[w].copy()) if images else (values[w],)
            if not hist:
                hist.extend([entry] * hist.maxlen)  # an episode's first observation fills the window
            else:
                hist.append(entry)
            if not self._queues[w]:
                need.append(w)
        if need:
            self._predict(need)
        for w in np.flatnonzero(active):
            out[w] = self._queues[w].popleft()
        return out

    def _predict(self, worlds: list[int]) -> None:
        ch = self.config.chunking
        state = torch.as_tensor(np.stack([np.stack([e[0] for e in self._history[w]]) for w in worlds]), device=self.device)
        images = None
        if self.config.observation.images:
            poses = np.stack([e[1] for w in worlds for e in self._history[w]])  # [B * n_obs, 2, 7]
            joints = np.stack([e[2] for w in worlds for e in self._history[w]])
            images = {k: torch.as_tensor(v, device=self.device).reshape(len(worlds), ch.n_obs_steps, *v.shape[1:])
                      for k, v in self.renderer.render(poses, joints).items()}
        noise = torch.stack([torch.randn((ch.horizon, 2), generator=self._generators[w]) for w in worlds])
        with torch.no_grad():
            chunks = self.model.predict(state, noise.to(self.device), images=images, net=self._denoiser)
        chunks = chunks.cpu().numpy().astype(np.float64)
        start = ch.n_obs_steps - 1  # the chunk starts at the window's first observation
        for w, chunk in zip(worlds, chunks):
            self._queues[w].extend(chunk[start:start + ch.n_action_steps])
        self.predictions += len(worlds)
