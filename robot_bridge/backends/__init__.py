"""Robot backends behind the bridge's safety layer, created by name without importing the heavy ones.

- ``sim``: `robot_bridge.backends.sim.SimBackend`, a numpy Panda follower (always available).
- ``franka_ros``: `robot_bridge.backends.franka_ros.FrankaRosBackend` (needs rospy; imported on demand).
- ``libfranka``: `robot_bridge.backends.libfranka.LibfrankaBackend` (needs pylibfranka; imported on demand).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend, BackendCommand, BackendState

__all__ = ["Backend", "BackendCommand", "BackendState", "BACKENDS", "make_backend"]

BACKENDS: dict[str, str] = {
    "sim": "robot_bridge.backends.sim:SimBackend",
    "franka_ros": "robot_bridge.backends.franka_ros:FrankaRosBackend",
    "libfranka": "robot_bridge.backends.libfranka:LibfrankaBackend",
}


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Construct the backend registered as ``name`` (``-`` and ``_`` are equivalent)."""
    key = name.replace("-", "_")
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}")
    module, cls = BACKENDS[key].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
