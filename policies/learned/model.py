"""The learned chunking model: normalisation, observation conditioning, the U-Net and its generative
head, in one ``torch.nn.Module`` whose weights (normalisation included) are one safetensors file.

Shapes: ``state`` [B, n_obs_steps, S] (the policy's state features in metres/radians, world frame),
``images`` view name -> uint8 RGB [B, n_obs_steps, H, W, 3] (image policies), ``actions`` [B, horizon, 2]
(pusher targets (x, y) [m], world frame). Normalisation maps each element's dataset range [min, max] to
[-1, 1] (Diffusion Policy's convention).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .config import PolicyConfig
from .generative import make_head
from .unet import ConditionalUnet1D
from .vision import ImageEncoder, crop_images

__all__ = ["ChunkModel", "MinMaxNormalizer"]


class MinMaxNormalizer(nn.Module):
    """Per-element affine map of [low, high] to [-1, 1]; elements with a (near) zero range are centred
    only. ``low``/``high`` are buffers (saved with the weights); NaN until set from a dataset's stats."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("low", torch.full((dim,), float("nan")))
        self.register_buffer("high", torch.full((dim,), float("nan")))

    def set_range(self, low: np.ndarray, high: np.ndarray) -> None:
        low, high = (torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1)) for x in (low, high))
        if low.shape != self.low.shape or high.shape != self.high.shape:
            raise ValueError(f"normalisation range of shape {tuple(low.shape)} for a feature of {tuple(self.low.shape)}")
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high >= low).all()):
            raise ValueError("normalisation range must be finite with high >= low")
        self.low.copy_(low)
        self.high.copy_(high)

    @property
    def is_set(self) -> bool:
        return bool(torch.isfinite(self.low).all())

    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        half = (self.high - self.low) / 2
        return (self.high + self.low) / 2, torch.where(half > 1e-6, half, torch.ones_like(half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid, half = self._scale()
        return (x - mid) / half

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        mid, half = self._scale()
        return y * half + mid


class ChunkModel(nn.Module):
    """Observation window -> action chunk (Diffusion Policy or flow matching, per ``config.type``)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.chunking
        self.state_norm = MinMaxNormalizer(config.observation.state_dim)
        self.action_norm = MinMaxNormalizer(2)
        v = config.observation.vision
        self.image_encoders = nn.ModuleDict({view.serial: ImageEncoder(v.channels, v.keypoints, v.feature_dim)
                                             for view in config.observation.images})
        cond_dim = ch.n_obs_steps * (config.observation.state_dim + len(self.image_encoders) * v.feature_dim)
        n = config.network
        self.net = ConditionalUnet1D(2, cond_dim, n.down_dims, n.kernel_size, n.n_groups, n.time_embed_dim)
        self.head = make_head(config.type, config.diffusion, config.flow)

    def _check(self, state: torch.Tensor) -> None:
        if not (self.state_norm.is_set and self.action_norm.is_set):
            raise RuntimeError("the model's normalisation is not set (set_stats, or load a checkpoint)")
        want = (self.config.chunking.n_obs_steps, self.config.observation.state_dim)
        if state.ndim != 3 or tuple(state.shape[1:]) != want:
            raise ValueError(f"state must be [B, {want[0]}, {want[1]}], got {list(state.shape)}")

    def set_stats(self, state_low: np.ndarray, state_high: np.ndarray, action_low: np.ndarray,
                  action_high: np.ndarray) -> None:
        """Normalisation ranges of the state features [S] and the action [2] (from a dataset's stats)."""
        self.state_norm.set_range(state_low, state_high)
        self.action_norm.set_range(action_low, action_high)

    def condition(self, state: torch.Tensor, images: dict[str, torch.Tensor] | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """The network's condition [B, n_obs_steps * (S + views * feature_dim)] of an observation window.
        In training mode images are randomly cropped (``generator``), else centre-cropped."""
        self._check(state)
        parts = [self.state_norm(state)]
        if self.image_encoders:
            if images is None or set(images) != set(self.image_encoders):
                raise ValueError(f"images of the views {sorted(self.image_encoders)} are needed, got "
                                 f"{sorted(images or {})}")
            b, t = state.shape[:2]
            for name, encoder in self.image_encoders.items():
                x = images[name]
                if x.shape[:2] != (b, t) or x.ndim != 5:
                    raise ValueError(f"images[{name!r}] must be [B, {t}, H, W, 3], got {list(x.shape)}")
                x = crop_images(x.flatten(0, 1), self.config.observation.vision.crop_fraction, generator,
                                random=self.training)
                parts.append(encoder(x).reshape(b, t, -1))
        return torch.cat(parts, dim=-1).flatten(1)

    def loss(self, state: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
             images: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Training loss of one batch (the head's: noise or velocity regression)."""
        return self.head.loss(self.net, self.action_norm(actions), self.condition(state, images, generator), generator)

    @torch.no_grad()
    def predict(self, state: torch.Tensor, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None, images: dict[str, torch.Tensor] | None = None,
                net: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                ) -> torch.Tensor:
        """Action chunks [B, horizon, 2] in metres (world frame), sampled from ``noise`` [B, horizon, 2]
        (drawn from ``generator`` when None): the same noise and observations give the same chunk.
        ``net``: the denoiser to sample with (default ``self.net``; e.g. a ``TracedDenoiser`` of it)."""
        cond = self.condition(state, images)
        shape = (state.shape[0], self.config.chunking.horizon, 2)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=cond.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {list(shape)}, got {list(noise.shape)}")
        chunk = self.head.sample(net or self.net, noise.to(cond.device), cond)
        return self.action_norm.inverse(chunk.clamp(-1.5, 1.5))
