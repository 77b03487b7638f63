"""A twin world's full state, to continue exactly from it: ``realsim deploy --save-state`` writes the live
twin's, ``realsim evaluate --from-state`` forks what-if rollouts from it.

A state holds what the next ``PushTEnv.step`` reads: the arm's joints and joint velocities [rad, rad/s],
the pusher's position [m] and velocity [m/s] (world frame), the block's and pusher's physics bodies exactly
as the solver stores them (float32; ``body_q`` (x, y, z, qx, qy, qz, qw), ``body_qd`` linear [m/s] then
angular [rad/s], world frame), the steps elapsed in the episode, and the block's dimensions (a state is
only continued by a twin with the same block).

The file is one ``.npz`` of plain numeric arrays plus a JSON string ``meta`` (the block, where the state
came from); it is read as hostile input (`load_twin_state` checks shapes, finiteness and ranges).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .pusht import TShape

__all__ = ["TwinState", "TwinStateError", "save_twin_state", "load_twin_state"]

_ARRAYS = {"joint_pos": (7,), "joint_vel": (7,), "pusher_xy": (2,), "pusher_vel": (2,), "body_q": (2, 7), "body_qd": (2, 6)}


class TwinStateError(ValueError):
    """A twin state file that cannot be used (the message says why)."""


@dataclass(frozen=True)
class TwinState:
    """One world's state (see the module docstring for units and frames)."""

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    pusher_xy: np.ndarray
    pusher_vel: np.ndarray
    body_q: np.ndarray
    body_qd: np.ndarray
    elapsed_steps: int
    block: TShape
    #: Where it came from (e.g. ``{"source": "deploy", "episode": 2, "seed": 1002, "step": 31}``).
    meta: dict[str, Any] = field(default_factory=dict)


def save_twin_state(path: str | Path, state: TwinState) -> Path:
    """Write ``state`` to ``path`` (``.npz``), atomically (a temporary file renamed into place)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    meta = {"format": "realsim-twin-state", "version": 1, "elapsed_steps": int(state.elapsed_steps),
            "block": asdict(state.block), "meta": state.meta}
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **{k: np.asarray(getattr(state, k)) for k in _ARRAYS})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_twin_state(path: str | Path) -> TwinState:
    """Read a state written by `save_twin_state`. Raises `TwinStateError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise TwinStateError(f"{path}: no such twin state file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error to the user
        raise TwinStateError(f"{path}: not a twin state file ({exc})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != "realsim-twin-state" or meta.get("version") != 1:
            raise TwinStateError(f"{path}: not a realsim twin state (format {meta.get('format')!r}, "
                                 f"version {meta.get('version')!r})")
        block = TShape(**{k: float(v) for k, v in dict(meta["block"]).items()})
        steps = int(meta["elapsed_steps"])
    except TwinStateError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise TwinStateError(f"{path}: bad meta data ({exc})") from None
    if steps < 0:
        raise TwinStateError(f"{path}: elapsed_steps must be >= 0, got {steps}")
    out = {}
    for name, shape in _ARRAYS.items():
        if name not in arrays:
            raise TwinStateError(f"{path}: missing array {name!r}")
        a = arrays[name]
        if a.shape != shape or a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
            raise TwinStateError(f"{path}: {name} must be a finite numeric array of shape {shape}, got "
                                 f"{a.dtype} {a.shape}")
        out[name] = a.astype(np.float32 if name.startswith("body") else np.float64)
    quat_norms = np.linalg.norm(out["body_q"][:, 3:], axis=1)
    if np.any(np.abs(quat_norms - 1.0) > 1e-3):
        raise TwinStateError(f"{path}: body_q holds non-unit quaternions (norms {quat_norms})")
    return TwinState(**out, elapsed_steps=steps, block=block, meta=dict(meta.get("meta") or {}))
