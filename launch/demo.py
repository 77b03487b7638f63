"""`realsim demo`: the scripted expert (or a trained policy) pushes the T in the twin on a few seeded
episodes.

Usage::

    realsim demo                          # 4 seeded episodes, one world each, run in parallel
    realsim demo --episodes 8 --seed 100
    realsim demo --policy runs/train/checkpoints/last/pretrained_model --episodes 12 --seed 1000
    realsim demo --set twin.block.friction=0.3 --out runs/demo-friction

Writes the resolved config and a ``results.json`` to the run folder and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from twin.config import TwinConfig

from ._common import add_config_arguments, make_run_dir, resolve_device


@dataclass(frozen=True)
class DemoConfig:
    """`realsim demo`: episodes run in parallel twin worlds, one world per episode."""

    episodes: int = 4
    seed: int = 0
    #: Warp device: "auto" picks CUDA when present, else "cpu".
    device: str = "auto"
    #: A trained checkpoint directory to run instead of the scripted expert ("" = the expert).
    policy_path: str = ""
    twin: TwinConfig = field(default_factory=TwinConfig)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="scripted expert in the twin on a few seeded episodes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=None, help="number of episodes (default 4)")
    p.add_argument("--seed", type=int, default=None, help="first episode seed (default 0)")
    p.add_argument("--policy", default=None, metavar="DIR", help="a trained checkpoint instead of the scripted expert")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-demo)")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config

    overrides = list(args.overrides)
    if args.episodes is not None:
        overrides.append(f"episodes={args.episodes}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.policy is not None:
        overrides.append(f"policy_path={args.policy}")
    cfg = load_config(DemoConfig, args.config, overrides)
    if cfg.episodes < 1:
        raise SystemExit("realsim demo: --episodes must be >= 1")
    device = resolve_device(cfg.device)
    twin_cfg = replace(cfg.twin, num_worlds=cfg.episodes, device=device)
    cfg = replace(cfg, twin=twin_cfg)
    out = make_run_dir("demo", args.out)
    save_config(cfg, out / "config.yaml")

    from policies.evaluation import run_episodes

    policy = None
    if cfg.policy_path:
        from policies.learned.checkpoint import CheckpointError
        from policies.registry import make_policy

        try:
            policy = make_policy("learned", twin_cfg, checkpoint=cfg.policy_path, device=device, seed=cfg.seed)
        except CheckpointError as exc:
            print(f"realsim demo: {exc}", file=sys.stderr)
            return 2
    result = run_episodes(twin_cfg, episode_seeds=list(range(cfg.seed, cfg.seed + cfg.episodes)), policy=policy,
                          progress=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    for ep in result["per_episode"]:
        print(f"episode seed {ep['seed']:4d}: {'success' if ep['success'] else 'failure'}  "
              f"coverage {ep['coverage']:.3f}  steps {ep['steps']}")
    print(f"success rate {result['success_rate']:.2f} over {cfg.episodes} episodes "
          f"(mean coverage {result['mean_coverage']:.3f}); results in {out}")
    return 0
