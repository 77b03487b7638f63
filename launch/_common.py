"""Helpers shared by the subcommands: device resolution, run folders, config arguments."""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path


def resolve_device(name: str) -> str:
    """"auto" -> "cuda:0" when Warp sees a CUDA device, else "cpu"; other names pass through.
    The one place realsim probes for CUDA."""
    import warp as wp

    quiet_warp()
    if name != "auto":
        return name
    return "cuda:0" if wp.is_cuda_available() else "cpu"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="YAML file with config values")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set twin.num_worlds=8 (repeatable)")


def make_run_dir(job: str, out: Path | None) -> Path:
    """``out`` or ``runs/<date>-<time>-<job>/`` in the working directory; created."""
    path = out if out is not None else Path("runs") / f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{job}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_libraries() -> None:
    """Silence Warp's per-module load lines and keep torch on one thread (2-core machines)."""
    import torch

    quiet_warp()
    torch.set_num_threads(1)


def quiet_warp() -> None:
    """No Warp start-up banner and no per-module load lines (warnings still show)."""
    import warp as wp

    wp.config.quiet = True
    if hasattr(wp, "LOG_WARNING"):
        wp.config.log_level = wp.LOG_WARNING


def free_tcp_endpoints(n: int, host: str = "127.0.0.1") -> list[str]:
    """``n`` distinct ``tcp://host:port`` endpoints with ports free right now."""
    import socket

    socks, out = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
            out.append(f"tcp://{host}:{s.getsockname()[1]}")
    finally:
        for s in socks:
            s.close()
    return out
