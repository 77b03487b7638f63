"""Throughput of the vectorised PushT twin: world-steps per second for N parallel worlds.

    python benchmarks/pusht_rollout.py                      # N in 1, 16, 64, 256, random actions
    python benchmarks/pusht_rollout.py --policy expert --worlds 16 64
    python benchmarks/pusht_rollout.py --baseline-python .venv-gym-pusht/bin/python

A world-step is one env step of one world: a whole control period (0.1 s, all physics substeps, the
IK and the task scoring included). With ``--baseline-python`` (an interpreter with gym-pusht, e.g.
made by ``make bench-baseline-env``) the same run measures gym-pusht's single-env state throughput.
Last line: ``{"world_steps_per_s": {"1": ..., ...}, "device": "...", ...}``.
"""

from __future__ import annotations

import argparse
import os
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(num_worlds: int, policy: str, device: str, seconds: float) -> float:
    from policies.expert import PushTExpert
    from twin.config import TwinConfig
    from twin.env import PushTEnv

    cfg = TwinConfig(num_worlds=num_worlds, device=device)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg) if policy == "expert" else None
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    ws = cfg.workspace
    steps, elapsed = 0, 0.0
    warmup = 3
    while elapsed < seconds or steps < 10:
        if expert is not None:
            actions = expert.act(obs)
        else:  # random walk of the pusher target, like a random policy on gym-pusht
            actions = ws.clip(obs.pusher_xy + rng.normal(0, 0.03, size=(num_worlds, 2)))
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(actions)
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)), options={"worlds": done})
            if expert is not None:
                expert.reset(done)
        dt = time.perf_counter() - t0
        if warmup:
            warmup -= 1
            continue
        elapsed += dt  # policy time excluded: this measures the twin
        steps += 1
    return steps * num_worlds / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--policy", choices=["random", "expert"], default="random")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured stepping time per N")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baseline-python", type=Path, default=None, help="interpreter with gym-pusht installed")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from launch._common import resolve_device

    device = resolve_device(args.device)
    figures: dict[str, float] = {}
    for n in args.worlds:
        figures[str(n)] = round(measure(n, args.policy, device, args.seconds), 1)
        print(f"N={n:4d}: {figures[str(n)]:10.1f} world-steps/s", flush=True)
    result: dict[str, object] = {"world_steps_per_s": figures, "device": device,
                                 "cpu": platform.processor() or platform.machine(), "policy": args.policy}
    if args.baseline_python is not None:
        out = subprocess.run([str(args.baseline_python), str(Path(__file__).with_name("_gym_pusht_baseline.py"))],
                             capture_output=True, text=True, timeout=600, check=True)
        baseline = json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]
        result["gym_pusht_steps_per_s"] = round(baseline, 1)
        result["best_over_gym_pusht"] = round(max(figures.values()) / baseline, 2)
        print(f"gym-pusht single env: {baseline:.1f} steps/s", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
