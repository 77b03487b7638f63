"""Does the twin rank policies as reality does? Success in batched twins against success through the live
stack on the simulated workspace (its full domain gap: look, calibration error, physics gap), per policy,
on the same seeds; Pearson r, Spearman rho, MMRV, and whether the best live policy is ranked first.

    # checkpoints of one training run at five steps (and an image policy's), then:
    python benchmarks/train_pusht.py --policy flow --minutes 60 --out runs/corr-train
    python benchmarks/train_pusht.py --policy flow --obs image --minutes 45 --out runs/corr-train
    python benchmarks/sim_real_correlation.py --out runs/corr \\
        --policy runs/corr-train/flow/checkpoints/*/pretrained_model runs/corr-train/flow-image/checkpoints/*/pretrained_model
    python benchmarks/sim_real_correlation.py --out runs/corr --live-minutes 90   # resumes: more live episodes

Besides the given checkpoints it evaluates the scripted expert and a deliberately weak one
(``expert:contacts=4,planner_worlds=8``). The twin part runs ``--twin-episodes`` (default 50, seeds
1000...) per policy as `realsim evaluate` runs them by default (episodes ended and judged by the live
loop's rules, the block observed with the live twin's estimation error); the live part ``--live-episodes`` (default 16, the first of the same seeds) per
policy on a freshly started simulated workspace, one policy at a time, each written to
``OUT/live/<name>.json`` when done. Live episodes run in real time (30-50 s each), so the script
resumes: policies whose twin or live results exist are skipped, a policy's live run interrupted by
Ctrl-C goes on from its first episode not done (``OUT/live/<name>/partial.json``), and ``--live-minutes`` stops starting
new live runs after that long. Last line (once every policy has both parts):
``{"policies", "pearson_r", "spearman_rho", "mmrv", "best_ranked_first", "twin_episodes", "live_episodes"}``;
the plot is ``OUT/comparison.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASELINES = ("expert", "expert:contacts=4,planner_worlds=8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", nargs="*", default=[], help="checkpoint directories (plus the two experts)")
    parser.add_argument("--out", type=Path, default=Path("runs/sim-real-correlation"))
    parser.add_argument("--twin-episodes", type=int, default=50)
    parser.add_argument("--live-episodes", type=int, default=16)
    parser.add_argument("--worlds", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--live-minutes", type=float, default=float("inf"),
                        help="start no new live run after this many minutes (run again to go on)")
    args = parser.parse_args()
    from launch._common import quiet_libraries, resolve_device
    from launch.evaluate_live import live_config, run_live
    from policies.evaluation.comparison import FIGURES, combine, comparison_table
    from policies.evaluation.job import EvaluateConfig, evaluate_policies
    from policies.evaluation.specs import check_policy, parse_policy, policy_names
    from twin.config import TwinConfig

    quiet_libraries()
    sys.setswitchinterval(0.001)
    device = resolve_device("auto")
    twin = TwinConfig(device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    listed = args.out / "policies.json"  # the set of policies is fixed at the first run
    texts = json.loads(listed.read_text()) if listed.is_file() else [*args.policy, *BASELINES]
    listed.write_text(json.dumps(texts, indent=2))
    specs = [parse_policy(t) for t in texts]
    for spec in specs:
        check_policy(spec, twin, device)
    names = policy_names(specs)
    config = EvaluateConfig(episodes=args.twin_episodes, seed=args.seed, worlds=args.worlds, videos=1, device=device)
    todo = [i for i, n in enumerate(names) if not (args.out / n / "eval_info.json").is_file()]
    if todo:
        evaluate_policies([specs[i] for i in todo], twin, config, args.out)  # its names are these policies' names
    t0 = time.monotonic()
    live_cfg = live_config(None, twin)  # nobody nudges the block: the twin's episodes have no such disturbance
    for spec, name in zip(specs, names):
        if (args.out / "live" / f"{name}.json").is_file():
            continue
        if (time.monotonic() - t0) / 60 > args.live_minutes:
            print(f"--live-minutes reached: run again to go on with {name}")
            break
        run_live([spec], [name], live_cfg, args.live_episodes, args.seed, args.out)
    report = combine(args.out)
    if report is None:
        print("fewer than two policies with both parts so far")
        return
    print(comparison_table(report))
    missing = [n for n in names if not (args.out / "live" / f"{n}.json").is_file()]
    if missing:
        print(f"live results missing for {missing}: the figures above cover {report['policies']} of {len(names)} policies")
    print(json.dumps({k: report[k] for k in FIGURES}))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # finished twin results and live episodes are kept (live/<name>/partial.json)
        print("interrupted: run the same command again to go on", file=sys.stderr)
        raise SystemExit(130)
