"""`realsim evaluate`: policies in many parallel twins, offline: success rates that rank checkpoints.

Usage::

    realsim evaluate --policy runs/train/flow/checkpoints/020000/pretrained_model --episodes 50
    realsim evaluate --policy CKPT_A CKPT_B expert --episodes 100 --worlds 64      # the same episodes for each
    realsim evaluate --policy lerobot:outputs/train/checkpoints/last/pretrained_model   # trained by lerobot-train
    realsim evaluate --policy CKPT --from-state runs/deploy/states/episode_002.npz    # what-if rollouts from a
                                                                                   # saved live twin state
    realsim evaluate --policy CKPT_A CKPT_B --ray auto     # sharded over the Ray cluster `ray start` runs here
    realsim evaluate --policy CKPT --ray 10.0.0.5:6379 --set evaluate.ray_gpus_per_actor=0.25   # 4 per GPU
    realsim evaluate --policy CKPT_A CKPT_B --compare-live --out runs/cmp    # and live, on the simulated workspace
    realsim evaluate --policy CKPT_C --compare-live --out runs/cmp           # another part into the same folder
    realsim evaluate --combine runs/cmp                                      # twin vs live: r, rho, MMRV, plot
    realsim evaluate --policy CKPT --set evaluate.episode_end=first_reach \
        --set evaluate.observation_noise.position_m=0 --set evaluate.observation_noise.yaw_rad=0   # gym-pusht's scoring

Episode ``e`` has seed ``--seed + e`` (default 1000, the held-out seeds): the same start state in any
batch size and as `realsim deploy` gives the simulated workspace with that seed. ``--policy`` takes
checkpoint directories (`realsim train`), ``lerobot:DIR`` (a ``lerobot-train`` checkpoint, run in LeRobot's
own environment from `make lerobot-env`) and ``expert[:KEY=VALUE,...]`` (the scripted planner). Each
policy is loaded once before any episode runs; one that does not load stops the job (exit 2).

Episodes end and are judged as `realsim deploy` ends and judges a live one (``evaluate.episode_end=live``,
`policies.evaluation.rules`): success is the block on the goal where the episode ends, after the coverage
held the goal for 5 steps without a touch (or at the time limit); a block pushed far outside the workspace
ends it as a failure. The policies observe the block with the live twin's estimation error
(``evaluate.observation_noise``, `policies.evaluation.observation_noise`: 1.7 mm and 0.75 degree).
``evaluate.episode_end=live_belief`` has the goal held by the block as the policy observes it (as the
live loop holds it on the twin's estimate), still judged on the exact block where the episode ends.
``evaluate.episode_end=first_reach`` and zero noise give gym-pusht's scoring on exact states instead.

The run folder (``runs/<date>-<time>-evaluate`` or ``--out``) receives per policy
``<name>/eval_info.json`` (LeRobot's fields: ``per_episode`` with ``episode_ix``, ``seed``, ``success``,
``max_reward``, ``sum_reward``, and ``aggregated`` with ``pc_success`` and its 95 % interval; per episode
also ``coverage`` where it ended, ``end`` and ``reached``) and
``<name>/videos/eval_episode_<e>.mp4`` (the first ``--videos`` episodes, from above the table, the goal
outlined), and ``summary.json`` / ``summary.txt`` (the table printed at the end). ``--compare-live`` runs
the first ``--live-episodes`` of the same episodes through the live stack (``live/<name>.json``) and
compares twin and live success over all policies of the folder: ``comparison.json`` (Pearson r,
Spearman rho, MMRV, whether the best live policy is ranked first) and ``comparison.png``. Live episodes
take real time, so none that finished is lost: run again with the same ``--out`` after Ctrl-C (or a
lost link) and the comparison goes on where it stopped (finished twin evaluations with the same
settings are kept; a policy's finished live episodes, ``live/<name>/partial.json``, too). Exit status 0
when done, 2 on a bad argument or policy, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from policies.evaluation.job import EvaluateConfig
from twin.config import TwinConfig

from ._common import add_config_arguments, make_run_dir, quiet_libraries, resolve_device


@dataclass(frozen=True)
class EvaluateJobConfig:
    """`realsim evaluate`: the twin the policies run in and the evaluation's settings."""

    twin: TwinConfig = field(default_factory=TwinConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate policies in many parallel twins (success rates, videos)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", nargs="+", default=[], metavar="POLICY",
                   help="checkpoint directories (realsim train), lerobot:DIR (lerobot-train) and/or expert[:KEY=VALUE,...]")
    p.add_argument("--episodes", type=int, default=None, help="episodes per policy (default 50)")
    p.add_argument("--worlds", type=int, default=None, help="twin worlds per batch (default 16)")
    p.add_argument("--seed", type=int, default=None, help="seed of episode 0 (default 1000)")
    p.add_argument("--videos", type=int, default=None, help="videos of the first N episodes per policy (default 2)")
    p.add_argument("--from-state", type=Path, default=None, metavar="FILE",
                   help="start every episode from this saved twin state (`realsim deploy --save-state`)")
    p.add_argument("--scene", default="", metavar="DIR", help="render the videos with this scanned scene")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="shard over Ray: 'auto' (the cluster `ray start` runs here), HOST:PORT, or 'local' (a "
                        "private one for this run); --set evaluate.ray_actors=N, evaluate.ray_gpus_per_actor=F")
    p.add_argument("--compare-live", action="store_true",
                   help="also run --live-episodes of each policy through the live stack on the simulated workspace "
                        "(same seeds) and compare: comparison.json / comparison.png in the run folder")
    p.add_argument("--live-episodes", type=int, default=16, help="live episodes per policy (default 16)")
    p.add_argument("--live-config", type=Path, default=None, metavar="FILE",
                   help="a deploy config for the live half (e.g. hardware: start_world=false and its links); "
                        "without one, the defaults with the workspace's random nudges of the block off")
    p.add_argument("--combine", type=Path, default=None, metavar="DIR",
                   help="only compute the twin-vs-live comparison of an evaluation folder (parts run separately)")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda:N'")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-evaluate)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config
    from policies.evaluation.job import evaluate_policies
    from policies.evaluation.report import summary_table
    from policies.evaluation.specs import PolicySpecError, check_policy, parse_policy
    from twin.state import TwinStateError, load_twin_state

    if args.combine is not None:
        return _combine(args.combine)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s evaluate %(levelname)s %(message)s")
    if not args.policy:
        print("realsim evaluate: --policy is required (or --combine DIR)", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    for flag, key in ((args.episodes, "episodes"), (args.worlds, "worlds"), (args.seed, "seed"),
                      (args.videos, "videos"), (args.ray, "ray")):
        if flag is not None:
            overrides.append(f"evaluate.{key}={flag}")
    cfg = load_config(EvaluateJobConfig, args.config, overrides)
    quiet_libraries()
    device = resolve_device(args.device)
    twin = replace(cfg.twin, device=device)
    # over Ray, "auto" is each worker's to resolve (a CPU-only driver may hand out GPU workers)
    evaluation = replace(cfg.evaluate, device=args.device if cfg.evaluate.ray and args.device == "auto" else device)
    live_cfg = None
    if args.compare_live:
        from .evaluate_live import live_config

        live_cfg = live_config(args.live_config, twin)
        # the twin's episodes end as the live ones do: the same rules, touches counted with the same margin
        evaluation = replace(evaluation, rules=live_cfg.live.rules, contact_margin_m=live_cfg.live.tracker.contact_margin_m)
    try:
        specs = [parse_policy(p) for p in args.policy]
        start_state = load_twin_state(args.from_state) if args.from_state is not None else None
        if start_state is not None:
            twin = replace(twin, block=start_state.block)
        for spec in specs:
            check_policy(spec, twin, device)
    except (PolicySpecError, TwinStateError) as exc:
        print(f"realsim evaluate: {exc}", file=sys.stderr)
        return 2
    out = make_run_dir("evaluate", args.out)
    save_config(cfg, out / "config.yaml")
    try:
        # a comparison goes on where an earlier run into the same folder stopped: finished twin results kept
        infos = evaluate_policies(specs, twin, evaluation, out, start_state, progress=not args.no_progress,
                                  scene_path=args.scene, reuse=args.compare_live and args.out is not None)
    except ImportError as exc:
        print(f"realsim evaluate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"realsim evaluate: interrupted; the episodes that finished are in {out}", file=sys.stderr)
        return 130
    print(summary_table(infos))
    print(json.dumps({name: {"pc_success": i["aggregated"]["pc_success"], "episodes": i["aggregated"]["episodes"]}
                      for name, i in infos.items()}))
    if args.compare_live:
        from policies.evaluation.specs import policy_names

        from .evaluate_live import run_live

        try:
            run_live(specs, policy_names(specs), live_cfg, min(args.live_episodes, evaluation.episodes),
                     evaluation.seed, out, evaluation.policy_seed)
        except KeyboardInterrupt:
            print(f"realsim evaluate: interrupted; the live episodes that finished are kept in {out}/live: the same "
                  f"command with --out {out} goes on from there", file=sys.stderr)
            return 130
        _combine(out)
    print(f"results in {out}")
    return 0


def _combine(folder: Path) -> int:
    from policies.evaluation.comparison import FIGURES, combine, comparison_table

    if not folder.is_dir():
        print(f"realsim evaluate: {folder} is not an evaluation folder", file=sys.stderr)
        return 2
    try:
        report = combine(folder)
    except ValueError as exc:
        print(f"realsim evaluate: {exc}", file=sys.stderr)
        return 2
    if report is None:
        print(f"{folder}: fewer than two policies with both twin and live results; nothing to compare yet")
        return 0
    print(comparison_table(report))
    print(json.dumps({k: report[k] for k in FIGURES}))
    print(f"comparison: {folder / 'comparison.json'}, {folder / 'comparison.png'}")
    return 0
