"""The digital twin: PushT scene and task, Newton physics of N worlds, the vectorised env API.

Import submodules directly (``from twin.env import PushTEnv``); names listed in ``__all__`` are also
reachable here and are imported on first use, so ``import twin`` never loads Newton or Warp.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TwinConfig": "twin.config",
    "PhysicsConfig": "twin.config",
    "RobotConfig": "twin.config",
    "WorkspaceConfig": "twin.config",
    "TShape": "twin.pusht",
    "GoalConfig": "twin.pusht",
    "PushTEnv": "twin.env",
    "Observation": "twin.env",
    "PandaKinematics": "twin.franka",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
