"""What a learned policy sees and does, named as the datasets name it.

A policy's inputs are selected by (dataset feature, element names): e.g. ``observation.state`` with
``("pusher_x", "pusher_y")`` and ``observation.environment_state`` with the 16 keypoint coordinates. The
same names read the columns of a realsim or LeRobot v3 dataset (``meta/info.json`` names) and are
computed from the twin's ``Observation`` at run time, so training and running read one definition.

Units: metres and radians, world frame. The action is the pusher target (x, y) [m], world frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twin.env import Observation

__all__ = ["ACTION_KEY", "ACTION_NAMES", "FeatureError", "StateFeature", "DEFAULT_STATE_FEATURES", "observation_values",
           "KNOWN_NAMES"]

ACTION_KEY = "action"
ACTION_NAMES = ("target_x", "target_y")


class FeatureError(ValueError):
    """A policy's features do not match the observations or dataset it is given."""


def _element(field: str, *index: int) -> Callable[["Observation"], np.ndarray]:
    return lambda obs: getattr(obs, field)[(slice(None),) + index]


#: Element name -> how to compute it from a twin ``Observation`` (per world, [N]).
KNOWN_NAMES: dict[str, Callable[["Observation"], np.ndarray]] = {
    "pusher_x": _element("pusher_xy", 0), "pusher_y": _element("pusher_xy", 1),
    "block_x": _element("block_pose", 0), "block_y": _element("block_pose", 1),
    "block_yaw": _element("block_pose", 2),
    **{f"joint_{i + 1}": _element("joint_pos", i) for i in range(7)},
    **{f"keypoint_{i}_{a}": _element("keypoints", i, j) for i in range(8) for j, a in enumerate("xy")},
}


@dataclass(frozen=True)
class StateFeature:
    """A low-dimensional input: ``names`` elements of the dataset feature ``key``."""

    key: str = "observation.state"
    names: tuple[str, ...] = ("pusher_x", "pusher_y")

    def __post_init__(self) -> None:
        if not self.names:
            raise FeatureError(f"{self.key}: no element names")
        unknown = [n for n in self.names if n not in KNOWN_NAMES]
        if unknown:
            raise FeatureError(f"{self.key}: unknown element(s) {unknown}; known: {sorted(KNOWN_NAMES)}")

    @property
    def dim(self) -> int:
        return len(self.names)

    def from_observation(self, obs: "Observation") -> np.ndarray:
        """[N, dim] float32 from the twin's observation of N worlds."""
        return np.stack([KNOWN_NAMES[n](obs) for n in self.names], axis=-1).astype(np.float32)

    def columns(self, dataset_names: tuple[str, ...] | list[str] | None) -> list[int]:
        """Indices of ``names`` among a dataset feature's element names (raises ``FeatureError`` when
        the dataset lacks one)."""
        if dataset_names is None:
            raise FeatureError(f"the dataset's {self.key} has no element names; cannot select {list(self.names)}")
        missing = [n for n in self.names if n not in dataset_names]
        if missing:
            raise FeatureError(f"the dataset's {self.key} lacks {missing} (it has {list(dataset_names)})")
        return [list(dataset_names).index(n) for n in self.names]


#: Default inputs of a state policy: the pusher's position and the T's eight outline corners.
DEFAULT_STATE_FEATURES = (
    StateFeature("observation.state", ("pusher_x", "pusher_y")),
    StateFeature("observation.environment_state", tuple(f"keypoint_{i}_{a}" for i in range(8) for a in "xy")),
)


def observation_values(features: tuple[StateFeature, ...], obs: "Observation") -> np.ndarray:
    """The policy's state input [N, sum(dim)] float32 from the twin's observation."""
    return np.concatenate([f.from_observation(obs) for f in features], axis=-1)
