"""The robot server under a protocol-aware hostile peer: what reaches the backend, against the caps.

Runs `robot_bridge.testing.run_fuzz` (real loopback sockets, the sim backend behind the full safety
layer, seeded) and measures every command at the backend boundary: velocity, acceleration and jerk
as finite differences of the commanded positions, as a robot would see them.

Usage::

    .venv/bin/python benchmarks/safety_fuzz.py                       # 100,000 messages (~10 min on 2 cores)
    .venv/bin/python benchmarks/safety_fuzz.py --messages 10000 --seed 7

The last line printed is a JSON object: ``{"messages", "ticks", "max_accel_ratio", "max_jerk_ratio",
"limit_violations", "server_deaths", "gate_refusals", ...}`` where the ratios are the largest |ddq| /
cap and |dddq| / cap seen (goal: <= 1.0 each, zero violations and deaths).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_bridge.testing import FuzzConfig, RecordingBackend, run_fuzz, running_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--walk-every", type=int, default=25, help="a joint-limit walk every this many rounds")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the server logs every kind of rejection; keep the figures readable
    backend = RecordingBackend(max_records=2_000_000)
    with running_server(backend) as server:
        report = run_fuzz(server, backend, FuzzConfig(messages=args.messages, seed=args.seed,
                                                       limit_walk_every=args.walk_every))
        rejections = {r.value: n for r, n in sorted(server.stats().rejections.items(), key=lambda kv: -kv[1])}
    print(f"rejections by reason: {rejections}", file=sys.stderr)
    out = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.as_dict().items()}
    out["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
