"""The ``realsim`` command line.

Usage examples::

    realsim --help
    realsim demo                                  # scripted expert in the twin, a few seeded episodes
    realsim demo --episodes 5 --set task.num_worlds=5
    realsim robot-server --backend sim            # robot side of the bridge (see `realsim robot-server --help`)

Each subcommand lives in its own module under ``launch/`` exposing ``add_parser(subparsers)``; the
parser's ``func`` default receives the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, imported lazily so that `realsim --help` never loads heavy backends.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "launch.demo",
    "launch.world",
    "launch.deploy",
    "launch.robot_server",
    "launch.cameras",
    "launch.calibrate",
    "launch.collect",
    "launch.dataset",
    "launch.train",
    "launch.evaluate",
    "launch.scan",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realsim",
        description="realsim: a digital twin between robot-learning policies and a real Franka Panda.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from launch.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"realsim {args.command}: bad config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("realsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
