"""Expert demonstrations in the twin, a learned state policy trained on them, evaluated on held-out seeds.

    python benchmarks/train_pusht.py --policy flow --minutes 60
    python benchmarks/train_pusht.py --policy diffusion --minutes 60 --dataset runs/bench-train/demos
    # both side by side on two cores, one thread each, at the learning rate chosen on seeds 500-509
    python benchmarks/train_pusht.py --policy flow --threads 1 --set optim.lr=1e-3 &
    python benchmarks/train_pusht.py --policy diffusion --threads 1 --set optim.lr=1e-3
    python benchmarks/train_pusht.py --policy flow --obs image --set optim.lr=1e-3   # an image policy

1. ``--demos`` episodes of the scripted expert (seeds 0..demos-1) in batched twins, written with
   ``record_twin_demos`` (as ``realsim collect --twin-only``) unless ``--dataset`` already holds them;
   only the successful ones are trained on.
2. Training (``policies.training``) for at most ``--minutes`` of wall time, evaluations on seeds 500-509
   included; the cosine schedule is sized from the speed measured in the first steps.
3. Evaluation of the EMA weights on the held-out seeds 1000-1049 (never used for demonstrations or tuning),
   one twin world per seed.

Last line: ``{"demos", "demos_successful", "train_minutes", "steps", "<policy>_success",
"<policy>_avg_max_coverage", "eval_seeds", "device"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HELD_OUT = list(range(1000, 1050))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", choices=("flow", "diffusion"), default="flow")
    parser.add_argument("--obs", choices=("state", "image", "image+wrist"), default="state",
                        help="the policy's inputs, as `realsim train --obs` (image: views rendered from the twin)")
    parser.add_argument("--demos", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-train"))
    parser.add_argument("--dataset", type=Path, default=None, help="demonstrations (default OUT/demos; made when absent)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads (default: every core; 1 to run two trainings side by side)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="training config override, as `realsim train --set`")
    args = parser.parse_args()
    import torch

    from launch._common import quiet_libraries, resolve_device
    from launch.config import load_config, to_dict
    from launch.dataset import _twin_configs
    from policies.dataset import DatasetReader
    from policies.dataset._twin_demos import record_twin_demos
    from policies.evaluation import run_episodes
    from policies.learned.policy import LearnedPolicy
    from policies.training.config import TrainConfig
    from policies.training.data import load_windows
    from policies.training.trainer import Trainer
    from twin.config import TwinConfig

    quiet_libraries()
    device = resolve_device(args.device)
    torch.set_num_threads(max(1, args.threads))
    twin = replace(TwinConfig(), device=device)  # the scene new demonstrations are recorded in
    dataset = args.dataset or args.out / "demos"
    if not (dataset / "meta" / "info.json").is_file():
        meta = {"fps": twin.control_hz, "twin": to_dict(replace(twin, device="cpu")), "gaussians": {}, "cameras": []}
        t0 = time.perf_counter()
        rec = record_twin_demos(dataset, twin, list(range(args.demos)), twin_meta=meta)
        print(f"{rec['episodes_written']} demonstrations ({rec['successes']} successful) in {time.perf_counter() - t0:.0f} s")
    reader = DatasetReader(dataset)
    twin = replace(_twin_configs(reader)[0], device=device)  # the dataset's scene: renders and evaluation
    successful = sum(reader.episode_success(i) for i in range(reader.num_episodes))
    run = args.out / (args.policy if args.obs == "state" else f"{args.policy}-{args.obs}")
    overrides = [f"policy.type={args.policy}", f"dataset={dataset}", f"output={run}", "only_successful=true",
                 f"schedule.max_minutes={args.minutes}"] + list(args.overrides)
    cfg = load_config(TrainConfig, None, overrides)
    cfg = replace(cfg, device=device, policy=replace(cfg.policy, twin=reader.twin_meta["twin"]))
    if args.obs != "state":
        from launch.train import image_observation

        cfg = replace(cfg, policy=replace(cfg.policy, observation=image_observation(cfg.policy.observation,
                                                                                    wrist=args.obs == "image+wrist")))
    windows = load_windows(dataset, cfg.policy, only_successful=True, twin=twin, cache_dir=run / "cache", device=device,
                           progress=True)

    # size the cosine schedule to the time budget from the speed of two short probe runs (their difference
    # leaves out the start-up cost)
    def probe_seconds(steps: int) -> float:
        probe = Trainer(replace(cfg, output=str(args.out / "probe"), schedule=replace(
            cfg.schedule, steps=steps, eval_every=0, save_every=0, max_minutes=0)), windows)
        t0 = time.perf_counter()
        probe.train(progress=False)
        return time.perf_counter() - t0

    short = probe_seconds(10)
    rate = 40 / max(1e-3, probe_seconds(50) - short)
    eval_share = 0.1  # time left for the periodic evaluations
    steps = max(100, int(rate * 60 * args.minutes * (1 - eval_share)))
    cfg = replace(cfg, schedule=replace(cfg.schedule, steps=steps, eval_every=max(1, steps // 5), save_every=max(1, steps // 5)))
    print(f"{rate:.1f} steps/s -> {steps} steps in {args.minutes:g} min")

    def evaluate(model):  # noqa: ANN001, ANN202
        eval_twin = replace(twin, num_worlds=10)
        r = run_episodes(eval_twin, list(range(500, 510)), policy=LearnedPolicy(model, device=device, twin=eval_twin))
        return {"success_rate": r["success_rate"], "avg_max_coverage": r["avg_max_coverage"]}

    trainer = Trainer(cfg, windows, evaluate=evaluate, train_meta={"dataset_episodes": windows.episodes})
    t0 = time.perf_counter()
    trainer.train()
    minutes = (time.perf_counter() - t0) / 60
    held_out_twin = replace(twin, num_worlds=len(HELD_OUT))
    result = run_episodes(held_out_twin, HELD_OUT, policy=LearnedPolicy(trainer.ema_model(), device=device, twin=held_out_twin),
                          progress=True)
    (run / "held_out.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"demos": reader.num_episodes, "demos_successful": int(successful), "train_minutes": round(minutes, 1),
                      "steps": trainer.step, "obs": args.obs, f"{args.policy}_success": result["success_rate"],
                      f"{args.policy}_avg_max_coverage": round(result["avg_max_coverage"], 3),
                      "eval_seeds": "1000-1049", "device": device if device != "cpu" else
                      f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"}))


if __name__ == "__main__":
    main()
