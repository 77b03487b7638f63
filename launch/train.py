"""`realsim train`: train a Diffusion Policy or flow-matching policy on a dataset of PushT episodes.

Usage::

    realsim train --dataset data/pusht-demos --policy flow             # state inputs, CPU or CUDA
    realsim train --dataset data/pusht-demos --policy diffusion --steps 20000 --out runs/dp
    realsim train --dataset data/pusht-demos --policy flow --obs image   # a 96x96 overhead view rendered
                                                                          # from the twin + the pusher position
    realsim train --dataset data/pusht-demos --obs image+wrist          # and a wrist camera's view
    realsim train --dataset data/pusht-demos --policy flow --only-successful \\
        --set optim.batch_size=128 --set policy.chunking.horizon=16 --set eval.seeds=[500,501,502]
    realsim train --out runs/dp --resume                                # continue where it stopped

Any dataset in LeRobot's v3 layout with the policy's features trains without conversion (a dataset
from `realsim collect`, `realsim collect --twin-only`, or LeRobot). The run folder (``--out``) holds the
resolved ``config.yaml``, ``checkpoints/{step}/pretrained_model`` (load with ``realsim deploy --policy``),
``log.jsonl``, ``train.rrd`` (open with ``rerun``) and ``loss.png``. Periodic evaluation runs the EMA
weights in parallel twins on ``eval.seeds`` (kept apart from demonstration and held-out seeds), the
episodes ended, judged and observed as `realsim evaluate` does (``eval.episode_end``,
``eval.observation_noise``), so the curve's success rates compare with its figures.
Ctrl-C writes a resumable checkpoint. Exit status 0 when done, 2 on a bad config or dataset, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ._common import add_config_arguments, make_run_dir

OBSERVATIONS = ("state", "image", "image+wrist")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a diffusion or flow-matching policy on a dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=None, help="dataset folder (LeRobot v3 layout)")
    p.add_argument("--policy", choices=("diffusion", "flow"), default=None, help="policy type (default flow)")
    p.add_argument("--obs", choices=OBSERVATIONS, default=None,
                   help="state: pusher position and the T's keypoints (default); image: the pusher position and "
                        "an overhead view rendered from the twin's state; image+wrist: and a wrist camera's view")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 20000)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    p.add_argument("--scene", default=None, metavar="DIR",
                   help="render image observations with this scanned scene (`realsim scan`), not the nominal palette")
    p.add_argument("--only-successful", action="store_true", help="train only on successful episodes")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    out = list(args.overrides)
    for flag, key in ((args.dataset, "dataset"), (args.policy, "policy.type"), (args.steps, "schedule.steps"),
                      (args.seed, "seed")):
        if flag is not None:
            out.append(f"{key}={flag}")
    if args.only_successful:
        out.append("only_successful=true")
    if args.scene is not None:
        out.append(f"policy.observation.scene_path={args.scene}")
    return out


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config
    from policies.training.config import TrainConfig

    if args.resume:
        if args.out is None or not (args.out / "config.yaml").is_file():
            print("realsim train: --resume needs --out with a run folder (its config.yaml)", file=sys.stderr)
            return 2
        cfg = load_config(TrainConfig, args.out / "config.yaml", _overrides(args))
    else:
        cfg = load_config(TrainConfig, args.config, _overrides(args))
        if args.obs in ("image", "image+wrist"):
            obs = image_observation(cfg.policy.observation, wrist=args.obs == "image+wrist")
            cfg = replace(cfg, policy=replace(cfg.policy, observation=obs))
    if not cfg.dataset:
        print("realsim train: --dataset is required", file=sys.stderr)
        return 2
    out = make_run_dir("train", args.out)
    return _train(replace(cfg, output=str(out)), args)


def image_observation(base, wrist: bool = False):  # noqa: ANN001, ANN201 - ObservationConfig
    """The image policy's inputs: the pusher's position and the overhead view (`OVERHEAD_VIEW`), and with
    ``wrist`` the wrist camera's (`WRIST_VIEW`)."""
    from policies.learned.config import OVERHEAD_VIEW, WRIST_VIEW
    from policies.learned.features import StateFeature

    views = (OVERHEAD_VIEW, WRIST_VIEW) if wrist else (OVERHEAD_VIEW,)
    return replace(base, state=(StateFeature("observation.state", ("pusher_x", "pusher_y")),), images=views)


def _train(cfg, args: argparse.Namespace) -> int:  # noqa: ANN001 - TrainConfig
    from launch.config import save_config
    from policies.dataset import DatasetError, DatasetReader
    from policies.training.data import load_windows
    from policies.training.trainer import Trainer, latest_checkpoint

    from ._common import quiet_libraries, resolve_device

    quiet_libraries()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # training is the one job here: all cores (quiet_libraries sets 1)
    requested_device = cfg.device  # kept in config.yaml: a resumed run picks its device again
    device = resolve_device(cfg.device)
    from launch.dataset import _twin_configs

    out = Path(cfg.output)
    try:
        reader = DatasetReader(cfg.dataset)
        twin_meta = reader.twin_meta
        twin = _twin_configs(reader)[0] if twin_meta is not None else None
        policy = replace(cfg.policy, twin=None if twin_meta is None else twin_meta.get("twin"))
        cfg = replace(cfg, device=device, policy=policy)
        windows = load_windows(cfg.dataset, cfg.policy, only_successful=cfg.only_successful, twin=twin,
                               cache_dir=out / "cache", device=device, progress=not args.no_progress)
    except (DatasetError, ValueError) as exc:
        print(f"realsim train: {exc}", file=sys.stderr)
        return 2
    resume_from = latest_checkpoint(out) if args.resume else None
    if args.resume and resume_from is None:
        print(f"realsim train: {out} has no complete checkpoint to resume from", file=sys.stderr)
        return 2
    if not args.resume and latest_checkpoint(out) is not None:
        print(f"realsim train: {out} already holds checkpoints: pass --resume, or choose another --out", file=sys.stderr)
        return 2
    save_config(replace(cfg, device=requested_device), out / "config.yaml")
    evaluate = _evaluator(twin, cfg, device) if cfg.eval.seeds and twin is not None else None
    meta = {"dataset_episodes": windows.episodes, "dataset_frames": len(windows)}
    trainer = Trainer(cfg, windows, evaluate=evaluate, train_meta=meta)
    if resume_from is not None:
        trainer.resume(resume_from)
        print(f"resuming from {resume_from} (step {trainer.step})")
    print(f"training a {cfg.policy.type} policy on {len(windows)} frames of {len(windows.episodes)} episodes "
          f"({cfg.dataset}) on {device}; run folder {out}")
    last = trainer.train(progress=not args.no_progress)
    print(f"done: step {trainer.step}, loss {last.get('loss', float('nan')):.4f}; "
          f"policy in {out / 'checkpoints' / 'last' / 'pretrained_model'}")
    return 0


def _evaluator(twin, cfg, device: str):  # noqa: ANN001, ANN202
    """EMA model -> success rate and mean max coverage on ``cfg.eval.seeds``, one twin world per seed, the
    episodes ended, judged and observed as `realsim evaluate` does (``eval.episode_end``,
    ``eval.observation_noise``)."""
    import numpy as np

    from policies.evaluation.batched import BatchEvaluator, evaluate_seeds
    from policies.evaluation.job import EvaluateConfig
    from policies.learned.policy import LearnedPolicy

    seeds = list(cfg.eval.seeds)
    evaluator = BatchEvaluator(replace(twin, device=device, max_episode_steps=cfg.eval.max_episode_steps), len(seeds))
    scoring = EvaluateConfig(episodes=len(seeds), worlds=len(seeds), device=device, episode_end=cfg.eval.episode_end,
                             observation_noise=cfg.eval.observation_noise)

    def evaluate(model) -> dict[str, float]:  # noqa: ANN001
        policy = scoring.observed(LearnedPolicy(model, seed=cfg.seed, twin=evaluator.config), evaluator.config)
        episodes, _, wall = evaluate_seeds(evaluator, policy, seeds, live_end=scoring.live_end(evaluator.config))
        return {"success_rate": float(np.mean([e["success"] for e in episodes])),
                "avg_max_coverage": float(np.mean([e["max_coverage"] for e in episodes])), "eval_s": wall}

    return evaluate
