"""Headless demo collection with the virtual operator on the simulated workspace.

Usage::

    .venv/bin/python benchmarks/collect.py                  # 20 episodes of up to 30 s (about 12 min)
    .venv/bin/python benchmarks/collect.py --episodes 3     # a shorter run

Runs the same episodes (same seeds, same virtual operator, same simulated workspace) twice: once with
`realsim deploy` without any recording (the baseline live loop) and once with `realsim collect`, and
prints flat figures; the last line is JSON:

- ``record_overhead``: the live loop's slowdown from recording, (seconds per control step while
  collecting) / (seconds per control step in the baseline) - 1;
- ``save_s_per_episode`` and ``wall_overhead``: the time spent between episodes rendering, encoding and
  committing each episode, and the whole recording cost over the collection's time without it;
- ``mb_per_min``: dataset size per minute of recorded episodes; ``success_rate``: episodes whose twin
  reached the goal; ``episodes``, ``frames``; the device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--episode-time-s", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=None, help="keep the run folder and dataset here")
    args = ap.parse_args()
    from policies.dataset import DatasetReader, validate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        root = out / "dataset"
        steps = int(round(args.episode_time_s * 10.0))
        base = subprocess.run([sys.executable, "-m", "launch.cli", "deploy", "--episodes", str(args.episodes),
                               "--out", str(out / "baseline"), "--set", "record_rrd=false",
                               "--set", f"live.twin.max_episode_steps={steps}"],
                              cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True)
        if base.returncode != 0:
            print(base.stdout[-3000:], base.stderr[-3000:], file=sys.stderr)
            return base.returncode
        base_eps = json.loads((out / "baseline" / "metrics.json").read_text())["episodes"]
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "launch.cli", "collect", "--episodes", str(args.episodes),
                               "--dataset", str(root), "--out", str(out), "--set", f"episode_time_s={args.episode_time_s}"],
                              cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        summary = json.loads((out / "summary.json").read_text())
        problems = validate_dataset(root)
        r = DatasetReader(root)
        success = [bool(r.episode(i)["next.success"].any()) for i in range(r.num_episodes)]
        size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
        rec = summary["recorder"]
        recording_s = rec["step_seconds"] + rec["save_seconds"]
        collect_s = summary["collect_wall_seconds"]
        minutes = r.num_frames / r.fps / 60.0
        print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)")
        print(f"wall time {wall:.0f} s (collection {collect_s:.0f} s, of which live loop {summary['loop_seconds']:.0f} s)")
        print(f"recording in the loop {rec['step_seconds']:.2f} s; saving episodes {rec['save_seconds']:.1f} s "
              f"({rec['save_seconds'] / max(r.num_episodes, 1):.2f} s per episode: render, encode, write)")
        print(f"dataset {size_mb:.1f} MB for {minutes:.1f} min of episodes; validate: {'ok' if not problems else problems}")
        def per_step(eps: list[dict]) -> float:
            return sum(e["time_s"] for e in eps if "time_s" in e) / max(sum(e.get("steps", 0) for e in eps), 1)

        base_step, rec_step = per_step(base_eps), per_step(summary["episodes"])
        print(f"live loop: {1e3 * base_step:.1f} ms per step without recording, {1e3 * rec_step:.1f} ms with "
              f"(baseline {sum(e['steps'] for e in base_eps)} steps, success rate "
              f"{sum(e['success'] for e in base_eps) / max(len(base_eps), 1):.2f})")
        result = {"episodes": r.num_episodes, "frames": r.num_frames,
                  "record_overhead": round(rec_step / base_step - 1.0, 4),
                  "mb_per_min": round(size_mb / max(minutes, 1e-9), 3),
                  "success_rate": round(sum(success) / max(len(success), 1), 3),
                  "wall_overhead": round(recording_s / max(collect_s - recording_s, 1e-9), 4),
                  "in_loop_recording_share": round(rec["step_seconds"] / max(summary["loop_seconds"], 1e-9), 5),
                  "save_s_per_episode": round(rec["save_seconds"] / max(r.num_episodes, 1), 3),
                  "device": "cpu", "cores": os.cpu_count()}
        print(json.dumps(result))
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
