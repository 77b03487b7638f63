"""`realsim world`: the simulated workspace, the stand-in for a real robot, cameras and T block.

Usage::

    realsim world                                        # robot on :5557, cameras on :5560, truth :5561, control :5562
    realsim world --calibration runs/sim-calibration.yaml --duration-s 60
    realsim world --set seed=3 --set disturbances.enabled=false --set camera_rate_hz=15

It serves the robot protocol (simulated Franka follower behind the safety layer) and the camera stream
exactly as real hardware would, with a domain gap the twin is not told. Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path

from ._common import add_config_arguments, make_run_dir

log = logging.getLogger("realsim.world")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="the simulated workspace (robot server + cameras + truth)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration", type=Path, default=None,
                   help="write the virtual rig's calibration file here (default: <out>/calibration.yaml)")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-world)")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config
    from sim_workspace.world import SimulatedWorld, WorldConfig

    from ._common import quiet_libraries

    logging.basicConfig(level=logging.INFO, format="%(asctime)s world %(levelname)s %(message)s")
    quiet_libraries()
    cfg = load_config(WorldConfig, args.config, args.overrides)
    out = make_run_dir("world", args.out)
    calibration = args.calibration or out / "calibration.yaml"
    cfg = replace(cfg, calibration_path=str(calibration))
    save_config(cfg, out / "config.yaml")
    world = SimulatedWorld(cfg)
    log.info("truth: friction %.2f, block mass %.3f kg, actuation lag %.0f ms; calibration in %s",
             world.truth_config.block.friction, world.truth_config.block.mass_kg, world.lag_s * 1e3, calibration)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("serving: robot %s, cameras %s, truth %s, control %s", cfg.robot_address, cfg.camera_endpoint,
             cfg.truth_endpoint, cfg.control_endpoint)
    world.run(stop, duration_s=args.duration_s)
    log.info("stopped after %d frame sets and %d nudges", world.frames_published, world.nudges)
    return 0
