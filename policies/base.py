"""The policy interface: what the twin's jobs (deploy, collect, evaluate) call.

A policy maps a batch of twin observations (``twin.env.Observation``, N worlds) to a batch of actions:
pusher targets (x, y) [m] in the world frame, shape [N, 2]. ``reset(worlds)`` tells it which worlds
start a new episode so it can drop per-world state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

__all__ = ["Policy", "reset_indices"]


class Policy(ABC):
    """Batched PushT policy."""

    @abstractmethod
    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        """Forget per-world state of ``worlds`` (all when None): a new episode starts there. ``seeds``: the
        episode seeds of those worlds (one per reset world, all worlds when ``worlds`` is None); a policy
        that samples draws a world's noise from its episode's seed, so an episode's actions do not depend
        on the batch it runs in."""

    @abstractmethod
    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        """Actions [N, 2]: pusher targets (x, y) [m], world frame.

        ``active`` [N] bool marks the worlds whose actions matter (None: all); a policy may skip work for
        the others and return their current pusher position there (hold).
        """

    def set_twin_config(self, config: "TwinConfig") -> None:  # noqa: B027 - optional hook, no-op by default
        """The twin's configuration changed (the live loop measured the real block's dimensions): a
        policy that models the twin adopts it. Default: nothing."""


def reset_indices(worlds: np.ndarray) -> np.ndarray:
    """The world indices a ``Policy.reset(worlds=...)`` names: a bool mask [N] or indices, as int [K]."""
    worlds = np.asarray(worlds)
    return np.flatnonzero(worlds) if worlds.dtype == bool else worlds.ravel().astype(int)
