"""How an action chunk is generated from noise, given the network and a condition.

- `DiffusionHead`: DDPM training (the network predicts the added noise or the clean chunk), DDIM
  sampling in ``num_inference_steps`` steps. The noise schedules are diffusers' schedulers.
- `FlowHead`: conditional flow matching on straight paths from noise (t = 0) to data (t = 1); the network
  predicts the velocity ``data - noise``; Euler or Heun integration in ``steps`` steps.

Both take chunks normalised to about [-1, 1], shape [B, T, A], and a condition [B, C].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

__all__ = ["DiffusionConfig", "DiffusionHead", "FlowConfig", "FlowHead", "make_head"]

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,T,A], t [B], cond [B,C])


@dataclass(frozen=True)
class DiffusionConfig:
    """DDPM training and DDIM inference (diffusers' ``DDPMScheduler`` and ``DDIMScheduler``)."""

    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: Literal["epsilon", "sample"] = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    num_inference_steps: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}]")


@dataclass(frozen=True)
class FlowConfig:
    """Conditional flow matching: integration steps and solver; the time fed to the network is
    ``t * time_scale`` so it spans the same range as diffusion step indices."""

    steps: int = 5
    solver: Literal["euler", "heun"] = "euler"
    time_scale: float = 100.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("flow steps must be >= 1")
        if self.solver not in ("euler", "heun"):
            raise ValueError(f"flow solver must be 'euler' or 'heun', got {self.solver!r}")


class DiffusionHead:
    """DDPM loss and DDIM sampling."""

    def __init__(self, config: DiffusionConfig) -> None:
        from diffusers.schedulers.scheduling_ddim import DDIMScheduler
        from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

        kw = dict(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                  beta_start=config.beta_start, beta_end=config.beta_end, prediction_type=config.prediction_type,
                  clip_sample=config.clip_sample, clip_sample_range=config.clip_sample_range)
        self.config = config
        self.train_scheduler = DDPMScheduler(**kw)
        self.sample_scheduler = DDIMScheduler(**kw)

    def loss(self, net: Denoiser, actions: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        t = torch.randint(0, self.config.num_train_timesteps, (actions.shape[0],), generator=generator,
                          device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        target = noise if self.config.prediction_type == "epsilon" else actions
        return F.mse_loss(net(noisy, t, cond), target)

    @torch.no_grad()
    def sample(self, net: Denoiser, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The chunk [B, T, A] denoised from ``noise`` (DDIM with eta = 0: deterministic given the noise)."""
        x, shape = noise, noise.shape
        sched = self.sample_scheduler
        sched.set_timesteps(self.config.num_inference_steps)
        for t in sched.timesteps:
            out = net(x, torch.full((shape[0],), int(t), device=cond.device, dtype=torch.long), cond)
            x = sched.step(out, t, x).prev_sample
        return x


class FlowHead:
    """Flow-matching loss and ODE sampling from noise."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config

    def loss(self, net: Denoiser, actions: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        t = torch.rand((actions.shape[0],), generator=generator, device=actions.device)
        x_t = (1.0 - t)[:, None, None] * noise + t[:, None, None] * actions
        return F.mse_loss(net(x_t, t * self.config.time_scale, cond), actions - noise)

    @torch.no_grad()
    def sample(self, net: Denoiser, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The chunk [B, T, A] integrated from ``noise`` at t = 0 to t = 1 (deterministic given the noise)."""
        x, shape = noise, noise.shape
        n, scale = self.config.steps, self.config.time_scale
        dt = 1.0 / n
        for k in range(n):
            t = torch.full((shape[0],), k * dt, device=cond.device)
            v = net(x, t * scale, cond)
            if self.config.solver == "heun" and k < n - 1:
                v2 = net(x + dt * v, (t + dt) * scale, cond)
                v = 0.5 * (v + v2)
            x = x + dt * v
        return x


def make_head(kind: str, diffusion: DiffusionConfig, flow: FlowConfig) -> DiffusionHead | FlowHead:
    """The head for a policy type ("diffusion" or "flow")."""
    if kind == "diffusion":
        return DiffusionHead(diffusion)
    if kind == "flow":
        return FlowHead(flow)
    raise ValueError(f"unknown policy type {kind!r}; known: diffusion, flow")
