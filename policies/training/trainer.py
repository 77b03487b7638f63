"""The training loop of learned chunking policies: AdamW, warm-up + cosine schedule, EMA weights,
checkpoints that resume exactly, Ctrl-C that leaves a resumable checkpoint, periodic evaluation.

Output folder::

    OUT/checkpoints/{step:06d}/pretrained_model/   the EMA weights as a policy checkpoint (`checkpoint`)
    OUT/checkpoints/{step:06d}/training_state/     raw weights, optimiser, schedule, EMA, random states
    OUT/checkpoints/last                           -> the newest complete checkpoint
    OUT/log.jsonl                                  one line per logged step and per evaluation
    OUT/train.rrd                                  the same curves as a rerun recording
    OUT/loss.png                                   loss curve, evaluation success and coverage beside it
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from policies.learned.checkpoint import save_pretrained
from policies.learned.model import ChunkModel

from .config import TrainConfig
from .data import ChunkWindows
from .plots import plot_training

__all__ = ["Trainer", "latest_checkpoint"]

Evaluator = Callable[[ChunkModel], dict[str, float]]  # EMA model -> {"success_rate", "avg_max_coverage", ...}


def latest_checkpoint(output: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``output/checkpoints`` (None when there is none)."""
    root = Path(output) / "checkpoints"
    done = sorted(p for p in root.glob("[0-9]" * 6) if (p / "training_state" / "state.pt").is_file()
                  and (p / "pretrained_model" / "config.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


class Trainer:
    """Trains ``config.policy`` on ``windows``; ``evaluate`` (optional) scores the EMA model."""

    def __init__(self, config: TrainConfig, windows: ChunkWindows, evaluate: Evaluator | None = None,
                 train_meta: dict[str, Any] | None = None) -> None:
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.config = config
        self.windows = windows
        self.evaluate = evaluate
        if config.device == "auto":
            raise ValueError("Trainer needs a resolved device (\"cpu\", \"cuda:0\"), not \"auto\"")
        self.device = config.device
        self.out = Path(config.output)
        self.train_meta = dict(train_meta or {})
        torch.manual_seed(config.seed)
        self.model = ChunkModel(config.policy).to(self.device)
        self.model.set_stats(*windows.ranges())
        o = config.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, o.warmup_steps, config.schedule.steps)
        self.ema = EMAModel(self.model.parameters(), decay=o.ema_decay, use_ema_warmup=True, power=o.ema_power)
        self.rng = np.random.default_rng(config.seed)
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed)
        self.step = 0
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the loop
    def train(self, progress: bool = True) -> dict[str, Any]:
        """Run until ``schedule.steps``; returns the last logged figures. On Ctrl-C a checkpoint of the
        current step is written before ``KeyboardInterrupt`` propagates."""
        s, ch = self.config.schedule, self.config.policy.chunking
        self.out.mkdir(parents=True, exist_ok=True)
        rec = _Rerun(self.out / "train.rrd")
        bar = tqdm(total=s.steps, initial=self.step, desc=f"train {self.config.policy.type}", unit="step",
                   disable=not progress, dynamic_ncols=True)
        t0, steps0, losses = time.perf_counter(), self.step, []
        try:
            while self.step < s.steps:
                if s.max_minutes and time.perf_counter() - t0 > 60.0 * s.max_minutes:
                    print(f"\ntime limit of {s.max_minutes:g} min reached at step {self.step}")
                    break
                frames = self.rng.integers(0, len(self.windows), self.config.optim.batch_size)
                state, actions, images = self.windows.window(frames, ch.n_obs_steps, ch.horizon)
                images = {k: v.to(self.device) for k, v in images.items()}
                self.model.train()
                loss = self.model.loss(state.to(self.device), actions.to(self.device), self.noise, images)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.ema.step(self.model.parameters())
                self.step += 1
                losses.append(loss.item())
                bar.update(1)
                if s.log_every and (self.step % s.log_every == 0 or self.step == s.steps):
                    rate = (self.step - steps0) / max(time.perf_counter() - t0, 1e-9)
                    entry = {"step": self.step, "loss": float(np.mean(losses)), "lr": self.scheduler.get_last_lr()[0],
                             "steps_per_s": rate}
                    self._append(entry, rec)
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", it_s=f"{rate:.1f}")
                    losses = []
                if self.evaluate is not None and s.eval_every and self.step % s.eval_every == 0:
                    self._append({"step": self.step, **self.evaluate(self.ema_model())}, rec)
                if s.save_every and self.step % s.save_every == 0 and self.step < s.steps:
                    self.save()
        except KeyboardInterrupt:
            bar.close()
            path = self.save()
            print(f"\ninterrupted at step {self.step}: resumable checkpoint {path}")
            raise
        bar.close()
        if self.evaluate is not None and s.eval_every and not (self.log and self.log[-1].get("step") == self.step
                                                               and "success_rate" in self.log[-1]):
            self._append({"step": self.step, **self.evaluate(self.ema_model())}, rec)
        self.save()
        return next((e for e in reversed(self.log) if "loss" in e), {})

    def _append(self, entry: dict[str, Any], rec: "_Rerun") -> None:
        self.log.append(entry)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
        rec.log(entry)

    def ema_model(self) -> ChunkModel:
        """A copy of the model holding the EMA weights, in eval mode."""
        model = ChunkModel(self.config.policy).to(self.device)
        model.load_state_dict(self.model.state_dict())
        self.ema.copy_to(model.parameters())
        return model.eval()

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Write the checkpoint of the current step and point ``checkpoints/last`` at it."""
        from safetensors.torch import save_file

        final = self.out / "checkpoints" / f"{self.step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        train_config = {**_jsonable(asdict(self.config)), **self.train_meta, "step": self.step}
        save_pretrained(self.ema_model(), tmp / "pretrained_model", train_config=train_config)
        (tmp / "training_state").mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  str(tmp / "training_state" / "model.safetensors"))
        torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "ema": self.ema.state_dict(), "rng": self.rng.bit_generator.state,
                    "noise": self.noise.get_state(), "torch_rng": torch.get_rng_state()},
                   tmp / "training_state" / "state.pt")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        last = self.out / "checkpoints" / "last"
        if last.is_symlink() or last.exists():
            last.unlink()
        last.symlink_to(final.name)
        plot_training(self.log, self.out / "loss.png", title=f"{self.config.policy.type} policy")
        return final

    def resume(self, checkpoint: str | Path) -> None:
        """Continue from a checkpoint written by ``save`` (same config): weights, optimiser, schedule,
        EMA, random states and the log up to it."""
        from safetensors.torch import load_file

        ck = Path(checkpoint)
        state = torch.load(ck / "training_state" / "state.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(load_file(str(ck / "training_state" / "model.safetensors"), device=self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.ema.load_state_dict(state["ema"])
        self.rng.bit_generator.state = state["rng"]
        self.noise.set_state(state["noise"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        log = self.out / "log.jsonl"
        if log.is_file():  # keep what was logged up to the checkpoint; drop what came after it
            entries = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
            self.log = [e for e in entries if e["step"] <= self.step]
            log.write_text("".join(json.dumps(e) + "\n" for e in self.log))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class _Rerun:
    """Training curves into a rerun recording file (scalars per step); silent when rerun fails."""

    def __init__(self, path: Path) -> None:
        try:
            import rerun as rr

            self.rec = rr.RecordingStream("realsim_train")
            self.rec.save(str(path))
            self.rr = rr
        except Exception:  # noqa: BLE001 - the log is a convenience; log.jsonl is the record
            self.rec = None

    def log(self, entry: dict[str, Any]) -> None:
        if self.rec is None:
            return
        self.rec.set_time("step", sequence=int(entry["step"]))
        for k, v in entry.items():
            if k != "step" and isinstance(v, (int, float)):
                self.rec.log(f"train/{k}", self.rr.Scalars(float(v)))
