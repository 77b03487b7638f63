"""The denoising network of Diffusion Policy and flow matching: a 1-D temporal convolutional U-Net over
an action chunk, conditioned through FiLM on the observation embedding and the denoising time.

Input ``x`` [B, T, A] (a noisy or interpolated action chunk, normalised), time ``t`` [B] (diffusion step
index, or flow time scaled to the same range), condition ``cond`` [B, C]; output [B, T, A] (the predicted
noise, clean chunk or velocity, per the generative head). ``T`` must be divisible by ``2 ** (levels - 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ConditionalUnet1D", "TimeEmbedding"]


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar time [B] -> [B, dim] (as in the Transformer's positions)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding size must be even, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class _ConvNormMish(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class _FiLMResidualBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the first one's output per channel (FiLM)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv1 = _ConvNormMish(c_in, c_out, kernel, groups)
        self.conv2 = _ConvNormMish(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.conv2(h * (1.0 + scale) + shift)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """U-Net over time with FiLM conditioning.

    Args:
        action_dim: A, the action's size.
        cond_dim: C, the observation embedding's size (all observation steps, flattened).
        down_dims: channels per level; the chunk is halved in time between levels.
        kernel_size: temporal kernel of every convolution.
        n_groups: GroupNorm groups (must divide every entry of ``down_dims``).
        time_embed_dim: size of the time embedding.
    """

    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...] = (128, 256, 512),
                 kernel_size: int = 5, n_groups: int = 8, time_embed_dim: int = 128) -> None:
        super().__init__()
        if not down_dims or any(d % n_groups for d in down_dims):
            raise ValueError(f"every entry of down_dims {down_dims} must be divisible by n_groups={n_groups}")
        self.levels = len(down_dims)
        self.time_mlp = nn.Sequential(TimeEmbedding(time_embed_dim), nn.Linear(time_embed_dim, 4 * time_embed_dim),
                                      nn.Mish(), nn.Linear(4 * time_embed_dim, time_embed_dim))
        c = time_embed_dim + cond_dim
        block = lambda i, o: _FiLMResidualBlock(i, o, c, kernel_size, n_groups)  # noqa: E731
        dims = (action_dim,) + tuple(down_dims)
        self.down = nn.ModuleList()
        for k, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
            last = k == len(down_dims) - 1
            self.down.append(nn.ModuleList([block(i, o), block(o, o),
                                            nn.Identity() if last else nn.Conv1d(o, o, 3, stride=2, padding=1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up = nn.ModuleList()
        for o, i in reversed(list(zip(down_dims[:-1], down_dims[1:]))):
            self.up.append(nn.ModuleList([block(2 * i, o), block(o, o), nn.ConvTranspose1d(o, o, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(_ConvNormMish(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % (2 ** (self.levels - 1)):
            raise ValueError(f"chunk length {x.shape[1]} must be divisible by {2 ** (self.levels - 1)}")
        c = torch.cat([self.time_mlp(t.expand(x.shape[0])), cond], dim=-1)
        h = x.transpose(1, 2)  # [B, A, T]
        skips = []
        for b1, b2, down in self.down:
            h = b2(b1(h, c), c)
            skips.append(h)
            h = down(h)
        for b in self.mid:
            h = b(h, c)
        for b1, b2, up in self.up:
            h = b2(b1(torch.cat([h, skips.pop()], dim=1), c), c)
            h = up(h)
        return self.final(h).transpose(1, 2)
