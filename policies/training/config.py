"""Settings of a training run, grouped by concern (``realsim train --set optim.lr=3e-4``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.evaluation.observation_noise import ObservationNoiseConfig
from policies.evaluation.rules import EPISODE_ENDS
from policies.learned.config import PolicyConfig

__all__ = ["EvalConfig", "OptimConfig", "ScheduleConfig", "TrainConfig"]


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up and cosine decay (diffusers' schedule); EMA of the weights."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    batch_size: int = 64
    grad_clip_norm: float = 10.0
    ema_decay: float = 0.9999  # upper bound; EMA warm-up (power 0.75) ramps up to it
    ema_power: float = 0.75

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.batch_size >= 1 and self.warmup_steps >= 0 and 0 < self.ema_decay < 1):
            raise ValueError("lr > 0, batch_size >= 1, warmup_steps >= 0 and ema_decay in (0, 1) required")


@dataclass(frozen=True)
class ScheduleConfig:
    """How long, and how often to log, save and evaluate (in optimiser steps; 0 disables)."""

    steps: int = 20_000
    #: Stop (with a checkpoint) after this much wall time of the run [min], evaluations included, even
    #: before ``steps``; 0: no limit.
    max_minutes: float = 0.0
    log_every: int = 50
    save_every: int = 2_000
    eval_every: int = 2_000

    def __post_init__(self) -> None:
        if self.steps < 1 or min(self.log_every, self.save_every, self.eval_every) < 0 or self.max_minutes < 0:
            raise ValueError("steps must be >= 1, and the intervals and max_minutes >= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Periodic evaluation in parallel twins: one world per seed. The default seeds (500-509) are kept
    apart from demonstration seeds (0 up) and from the held-out seeds figures are quoted on (1000 up).
    Episodes are ended, judged and observed as `realsim evaluate` does by default, so the training curve's
    success rates compare with its figures."""

    seeds: tuple[int, ...] = tuple(range(500, 510))
    max_episode_steps: int = 300
    #: "live" (the live loop's rules: goal held without a touch, judged where the episode ends),
    #: "live_belief" (the same, the goal held by the block as the policy observes it) or "first_reach"
    #: (gym-pusht's); see `policies.evaluation.rules`.
    episode_end: str = "live"
    #: Noise on the observed block pose, the live twin's estimation error (zero sizes: exact observations).
    observation_noise: ObservationNoiseConfig = field(default_factory=ObservationNoiseConfig)

    def __post_init__(self) -> None:
        if self.max_episode_steps < 1:
            raise ValueError("eval.max_episode_steps must be >= 1")
        if self.episode_end not in EPISODE_ENDS:
            raise ValueError(f"eval.episode_end must be one of {EPISODE_ENDS}, got {self.episode_end!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A training run: the policy to train, on which dataset, how."""

    dataset: str = ""
    output: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # "auto": CUDA when present, else CPU
    only_successful: bool = False
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
