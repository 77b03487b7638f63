"""`realsim robot-server`: the robot side of the bridge (safety layer + one backend).

Usage examples::

    realsim robot-server --backend sim                                   # simulated Panda on tcp://127.0.0.1:5557
    realsim robot-server --backend franka_ros --config robot.yaml        # next to franka_ros_interface (ROS 1)
    realsim robot-server --backend libfranka --set libfranka.hostname=172.16.0.2
    realsim robot-server --set server.bind_address=tcp://127.0.0.1:6000 --set server.safety.limit_factor=0.3
    realsim robot-server --print-config > robot.yaml                     # every setting, with its default
    realsim robot-server --backend sim --duration-s 10                   # stop after 10 s
    realsim robot-server --config robot.yaml --recover                   # operator: clear a robot error (libfranka)

Ctrl-C (or SIGTERM) brings the arm to rest at the acceleration and jerk caps before the robot is
released. A failure of the server's control thread brakes the arm the same way, then the command exits
with status 1. ``--recover`` connects to the running server named by the config (as a client: it takes
the session over from the twin) and asks for the robot's own error recovery; use it only once the cause
of the error is understood and the workspace is clear.

A non-loopback ``server.bind_address`` is refused unless ``server.curve_secret_key_file`` and
``server.curve_authorized_keys_dir`` are set (create keys with ``zmq.auth.create_certificates``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace

import yaml

from launch.config import ConfigError, load_config, save_config, to_dict
from robot_bridge.backends.franka_ros import FrankaRosConfig  # config only: rospy loads on connect
from robot_bridge.backends.libfranka import LibfrankaConfig  # config only: pylibfranka loads on connect
from robot_bridge.backends.sim import SimFrankaConfig
from robot_bridge.client import ClientConfig
from robot_bridge.server import ServerConfig

log = logging.getLogger("realsim.robot_server")


@dataclass(frozen=True)
class RobotServerJobConfig:
    """Config of ``realsim robot-server``: the server, and the settings of each backend."""

    backend: str = "sim"  # sim | franka_ros | libfranka
    server: ServerConfig = field(default_factory=ServerConfig)
    sim: SimFrankaConfig = field(default_factory=SimFrankaConfig)
    franka_ros: FrankaRosConfig = field(default_factory=FrankaRosConfig)
    libfranka: LibfrankaConfig = field(default_factory=LibfrankaConfig)
    stats_period_s: float = 5.0  # how often counters are logged [s]
    #: the operator's client for ``--recover`` ("" server_address = the server's bind_address)
    recover: ClientConfig = field(default_factory=lambda: ClientConfig(server_address="", name="operator-recover"))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robot-server", help="robot side of the bridge: safety layer + backend",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sim", "franka_ros", "franka-ros", "libfranka"], default=None,
                   help="robot backend (overrides the config's 'backend')")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. server.safety.limit_factor=0.3 (repeatable)")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--save-config", default=None, help="write the resolved config to this YAML file")
    p.add_argument("--recover", action="store_true",
                   help="ask the running server for the robot's error recovery (an operator's decision), then exit")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)


def build(args: argparse.Namespace):
    cfg = load_config(RobotServerJobConfig, args.config, args.overrides)
    if args.backend:
        cfg = replace(cfg, backend=args.backend.replace("-", "_"))
    if cfg.backend not in ("sim", "franka_ros", "libfranka"):
        raise ConfigError(f"backend {cfg.backend!r} is not one of sim, franka_ros, libfranka")
    return cfg


def make_backend(cfg):
    from robot_bridge.backends import make_backend as make

    if cfg.backend == "sim":
        return make("sim", config=cfg.sim)
    if cfg.backend == "franka_ros":
        return make("franka_ros", config=cfg.franka_ros)
    return make("libfranka", config=cfg.libfranka)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = build(args)
    except ConfigError as exc:
        print(f"realsim robot-server: {exc}", file=sys.stderr)
        return 2
    if args.save_config:
        save_config(cfg, args.save_config)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0

    from robot_bridge import BridgeError, RobotServer

    if getattr(args, "recover", False):
        return _recover(cfg)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        server = RobotServer(make_backend(cfg), cfg.server)
        server.start(timeout_s=cfg.server.backend_connect_timeout_s + 5.0)
        print(f"realsim robot-server: backend {cfg.backend} serving on {server.endpoint}", flush=True)
        t_end = None if args.duration_s is None else time.monotonic() + args.duration_s
        t_stats = time.monotonic()
        while not stop.wait(0.1):
            server.check()
            now = time.monotonic()
            if now - t_stats >= cfg.stats_period_s:
                t_stats = now
                st = server.stats()
                log.info("mode=%s accepted=%d rejected=%d %s watchdog_holds=%d", st.mode.name, st.n_accepted,
                         st.n_rejected, {r.value: n for r, n in st.rejections.items()}, st.n_watchdog_holds)
            if t_end is not None and now >= t_end:
                break
        return 0
    except BridgeError as exc:
        print(f"realsim robot-server: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        for s, h in previous.items():
            signal.signal(s, h)


def _recover(cfg: RobotServerJobConfig) -> int:
    from robot_bridge import BridgeClient, BridgeError, Mode

    client_cfg = cfg.recover
    if not client_cfg.server_address:
        client_cfg = replace(client_cfg, server_address=cfg.server.bind_address)
    try:
        with BridgeClient(client_cfg) as client:
            st = client.request_recovery(timeout_s=cfg.server.backend_connect_timeout_s)
    except BridgeError as exc:
        print(f"realsim robot-server --recover: {exc}", file=sys.stderr)
        return 1
    print(f"realsim robot-server --recover: robot in {Mode(st.mode).name}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run this one subcommand on its own: ``python -m launch.robot_server --backend sim``."""
    parser = argparse.ArgumentParser(prog="realsim")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["robot-server", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
