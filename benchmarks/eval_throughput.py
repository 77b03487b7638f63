"""Evaluation throughput: twin episodes per hour in batched twins (W = 1, 16, 64) for a state policy and an
image policy, against live episodes per hour through the live stack on the simulated workspace.

    python benchmarks/eval_throughput.py                    # about 15 min on 2 cores
    python benchmarks/eval_throughput.py --worlds 1 16 --live-episodes 2

The policies are flow-matching checkpoints of the default size (state: pusher and the T's keypoints;
image: the pusher and the 96x96 overhead view, rendered per step for every world that needs a chunk),
with untrained weights: they never succeed, so an episode runs its full ``--steps`` in the twin and
live alike unless it pushes the block far out of the workspace (then both end it; twin rates count
full-length episodes by the steps run), and episodes per hour compare like with like. The twin runs
episodes as `realsim evaluate` does (the live episode rules, the observation noise). A live episode's time counts its reset,
localisation and settling (the first episode's scan and block measurement are left out). Last line:
``{"twin_state_eps_per_hour", "twin_image_eps_per_hour", "live_eps_per_hour", "speedup_state",
"speedup_image", ...}`` (twin figures at the best W).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_checkpoints(folder: Path) -> dict[str, Path]:
    """Untrained default-size flow checkpoints whose actions land in the workspace."""
    from policies.learned.checkpoint import save_pretrained
    from policies.learned.config import OVERHEAD_VIEW, ObservationConfig, PolicyConfig
    from policies.learned.features import StateFeature
    from policies.learned.model import ChunkModel
    from twin.config import TwinConfig

    ws = TwinConfig().workspace
    low, high = np.array(ws.low), np.array(ws.high)
    out = {}
    from launch.config import to_dict

    trained_for = to_dict(replace(TwinConfig(), device="cpu"))  # the twin it is meant for (no warning)
    configs = {"state": PolicyConfig(type="flow", twin=trained_for),
               "image": PolicyConfig(type="flow", twin=trained_for, observation=ObservationConfig(
                   state=(StateFeature("observation.state", ("pusher_x", "pusher_y")),), images=(OVERHEAD_VIEW,)))}
    for name, cfg in configs.items():
        model = ChunkModel(cfg)
        s = cfg.observation.state_dim
        model.set_stats(np.full(s, -0.3), np.full(s, 0.8), low, high)
        out[name] = save_pretrained(model, folder / name / "pretrained_model")
    return out


def twin_rate(checkpoint: Path, worlds: int, steps: int) -> float:
    """Episodes per hour of one batch of ``worlds`` episodes as `realsim evaluate` runs them (its episode
    rules and observation noise), counted in full-length episodes (an episode that ended early counts
    by the steps it ran)."""
    from policies.evaluation.job import EvaluateConfig, LocalRunner, Unit
    from policies.evaluation.specs import parse_policy
    from twin.config import TwinConfig

    config = EvaluateConfig(episodes=worlds, worlds=worlds, videos=0)
    runner = LocalRunner(TwinConfig(max_episode_steps=steps), [parse_policy(str(checkpoint))], config, None)
    results, _, wall = runner.run(Unit(0, 0, tuple(range(1000, 1000 + worlds))))
    return sum(r["steps"] for r in results) / steps / wall * 3600.0


def live_rate(checkpoint: Path, episodes: int, steps: int) -> float:
    """Live episodes per hour (episodes after the first, whose scan and measurement are left out)."""
    from launch.config import load_config
    from launch.deploy import DeployConfig, start_world, stop_process
    from policies.evaluation.specs import build_policy, parse_policy
    from sim_workspace.clients import clients_for
    from twin.live import LiveRunner

    cfg = load_config(DeployConfig, None, [])
    cfg = replace(cfg, world=cfg.world.hands_off(),
                  live=replace(cfg.live, episodes=episodes + 1, seed=1000,
                               twin=replace(cfg.live.twin, max_episode_steps=steps, device="cpu")))
    with tempfile.TemporaryDirectory() as tmp:
        proc, cfg = start_world(cfg, Path(tmp))
        runner = None
        try:
            control, truth = clients_for(cfg.live.links.control_endpoint, cfg.live.links.truth_endpoint)
            runner = LiveRunner(cfg.live, build_policy(parse_policy(str(checkpoint)), cfg.live.twin), world=control,
                                truth=truth)
            runner.start()
            walls = []
            for k in range(episodes + 1):
                t0 = time.perf_counter()
                ep = runner.run_episode(k)
                walls.append(time.perf_counter() - t0)
                print(f"live episode {k}: {walls[-1]:.1f} s, {ep['steps']} steps ({ep['reason'] or 'success'})", flush=True)
        finally:
            if runner is not None:
                runner.close()
            stop_process(proc)
    return 3600.0 / float(np.mean(walls[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=300, help="episode length (the twin's max_episode_steps)")
    parser.add_argument("--live-episodes", type=int, default=3, help="live episodes timed (after a first one)")
    args = parser.parse_args()
    from launch._common import quiet_libraries

    quiet_libraries()
    sys.setswitchinterval(0.001)
    out: dict[str, object] = {"steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = make_checkpoints(Path(tmp))
        for name, path in ckpts.items():
            for w in args.worlds:
                rate = twin_rate(path, w, args.steps)
                out[f"twin_{name}_eps_per_hour_w{w}"] = round(rate, 1)
                print(f"twin, {name} policy, W = {w:3d}: {rate:9.1f} episodes per hour", flush=True)
        live = live_rate(ckpts["state"], args.live_episodes, args.steps)
    print(f"live (state policy): {live:.1f} episodes per hour")
    best = {n: max(out[f"twin_{n}_eps_per_hour_w{w}"] for w in args.worlds) for n in ("state", "image")}
    out.update({"twin_state_eps_per_hour": best["state"], "twin_image_eps_per_hour": best["image"],
                "live_eps_per_hour": round(live, 1), "speedup_state": round(best["state"] / live, 1),
                "speedup_image": round(best["image"] / live, 1), "device": "cpu", "cores": os.cpu_count()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
