"""`realsim demo`: the scripted expert in the twin on a few seeded episodes (filled in by the twin core)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the simulated workspace")
    p.set_defaults(func=lambda args: 0)
