"""Success of the scripted PushT expert on seeded episodes in the twin.

    python benchmarks/expert.py --episodes 50

Episodes run in parallel worlds (seeds 0..episodes-1). Last line:
``{"success_rate": ..., "mean_coverage": ..., "episodes": ...}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import json
import platform


import warp as wp

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    wp.config.quiet = True
    from launch._common import resolve_device
    from policies.evaluation import run_episodes
    from twin.config import TwinConfig

    device = resolve_device(args.device)
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    result = run_episodes(TwinConfig(device=device), seeds, progress=True)
    for ep in result["per_episode"]:
        print(f"seed {ep['seed']:3d} success={ep['success']!s:5} coverage={ep['coverage']:.3f} steps={ep['steps']}")
    print(f"wall {result['wall_s']:.1f} s on {device} ({platform.processor() or platform.machine()})")
    print(json.dumps({"success_rate": result["success_rate"], "mean_coverage": round(result["mean_coverage"], 4),
                      "episodes": result["episodes"], "device": device}))


if __name__ == "__main__":
    main()
