"""The digital twin: PushT scene and task, Newton physics of N worlds, the vectorised env API.

The twin proper lives here: ``config`` (grouped configuration), ``pusht`` (the task: T geometry, goal,
coverage, pose errors), ``transforms``, ``franka`` (Panda kinematics), ``_physics``/``_kernels``
(Newton/Warp), ``env`` (``PushTEnv``), ``gaussians`` and ``gaussian_scene`` (the Gaussians bound to the
bodies), ``render`` (rasterization and the batched ``SceneRenderer``), ``rig`` (virtual cameras).
Beside it, in sub-packages: ``perception`` (correction, localisation, shape fit, the ``BlockTracker``),
``live`` (the live loop of deploy and collect) and ``cameras`` (RealSense, recordings, the stream).
The simulated workspace that plays reality is not here: it is the ``sim_workspace`` package, which
nothing in ``twin`` imports.

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
