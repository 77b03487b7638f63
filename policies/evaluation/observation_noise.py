"""The block as a live policy sees it: the twin's estimate, a few millimetres off the real block.

Live, a policy acts on the twin's block, which the visual correction keeps near the real one: on the
simulated workspace the twin's block is 1.8-2.2 mm (median) and 0.47-0.57 degree from the real one at the
moment the twin's state is meant for (``twin_vs_truth_aligned`` of 16 live episodes of each of 9 policies,
``benchmarks/sim_real_correlation.py``, seeds 1000-1015). A twin evaluation gives a policy the simulated
block exactly. `NoisyObservations` adds to each observed block pose independent Gaussian noise of that
size (``ObservationNoiseConfig``: a per-axis position sigma of 1.7 mm has a median planar error of 2.0 mm,
a yaw sigma of 0.75 degree a median of 0.5 degree), so that a policy that only works on exact poses is
found out in the twin. The live error persists for a few steps (its correlation falls to about 0.4 after
5 control steps on the seed-1050 workspace); ``correlation_steps`` gives the noise that persistence
(off by default: with it, or with the larger errors of that workspace, the scripted expert's twin success
stayed where it was, 15 of 16). The physics is untouched: the noise is in what the policy observes (block pose,
outline corners, and the block's body pose that image policies render), drawn per world from its
episode's seed, so an episode's observations do not depend on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from twin.pusht import block_keypoints
from twin.transforms import quat_wxyz_to_yaw, wrap_angle, yaw_to_quat_wxyz

from ..base import Policy, reset_indices

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

__all__ = ["ObservationNoiseConfig", "NoisyObservations"]

BLOCK = 0  # the block's row in Observation.body_poses


@dataclass(frozen=True)
class ObservationNoiseConfig:
    """Gaussian noise on the block pose a policy observes in a twin evaluation (0 and 0: none)."""

    #: Standard deviation per axis of the block's observed position (x, y) [m], world frame.
    position_m: float = 0.0017
    #: Standard deviation of the block's observed yaw [rad] (0.75 degree).
    yaw_rad: float = 0.013
    #: How long an error persists [control steps]: the error follows a first-order autoregressive process
    #: whose correlation falls to 1/e after this many steps, each step's error keeping the standard
    #: deviations above (0: independent errors at every step).
    correlation_steps: float = 0.0

    def __post_init__(self) -> None:
        if not (self.position_m >= 0 and self.yaw_rad >= 0 and self.correlation_steps >= 0):
            raise ValueError("observation noise standard deviations and correlation_steps must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.position_m > 0 or self.yaw_rad > 0


class NoisyObservations(Policy):
    """``policy`` acting on noisy observations of the block (see the module docstring).

    Args:
        policy: the policy evaluated.
        twin: the twin (its block's outline for the observed corners).
        config: the noise.
    """

    def __init__(self, policy: Policy, twin: "TwinConfig", config: ObservationNoiseConfig) -> None:
        self.policy, self.twin, self.config = policy, twin, config
        self._generators: list[np.random.Generator] = []
        self._errors: list[np.ndarray | None] = []  # per world: the last error drawn (None: a fresh episode)

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        self.policy.reset(worlds, seeds)
        if worlds is None:
            seeds = np.arange(self.twin.num_worlds) if seeds is None else np.asarray(seeds).reshape(-1)
            self._generators = [self._generator(int(s)) for s in seeds]
            self._errors = [None] * len(self._generators)
            return
        idx = reset_indices(worlds)
        seeds = idx if seeds is None else np.asarray(seeds).reshape(-1)
        for w, s in zip(idx, seeds):
            if w < len(self._generators):
                self._generators[w] = self._generator(int(s))
                self._errors[w] = None

    @staticmethod
    def _generator(seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, 0x0B5E])  # its own stream, apart from the policy's noise

    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        return self.policy.act(self.observe(obs, active), active)

    def observe(self, obs: "Observation", active: np.ndarray | None = None) -> "Observation":
        """The block as the policy sees it: this step's error drawn for each ``active`` world (the others
        observed exactly, drawing nothing) and added to the block pose, its outline corners and its body pose.
        `act` observes and acts; a caller that needs the observation itself (the episode rules that read the
        block as the policy sees it) calls this and then acts through ``self.policy``."""
        n = len(obs.pusher_xy)
        active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).reshape(n)
        while len(self._generators) < n:  # worlds never reset with a seed
            self._generators.append(self._generator(len(self._generators)))
            self._errors.append(None)
        offset = np.zeros((n, 3))
        scale = np.array([self.config.position_m, self.config.position_m, self.config.yaw_rad])
        keep = np.exp(-1.0 / self.config.correlation_steps) if self.config.correlation_steps > 0 else 0.0
        for w in np.flatnonzero(active):
            fresh = self._generators[w].normal(size=3) * scale
            previous = self._errors[w]
            # stationary: every step's error has the configured spread, successive ones correlated by `keep`
            self._errors[w] = fresh if previous is None else keep * previous + np.sqrt(1.0 - keep**2) * fresh
            offset[w] = self._errors[w]
        pose = obs.block_pose + offset
        pose[:, 2] = wrap_angle(pose[:, 2])
        body_poses = obs.body_poses
        if body_poses is not None:
            body_poses = body_poses.copy()
            body_poses[:, BLOCK, :2] += offset[:, :2]
            yaw = quat_wxyz_to_yaw(body_poses[:, BLOCK, 3:]) + offset[:, 2]
            body_poses[:, BLOCK, 3:] = yaw_to_quat_wxyz(yaw)
        return replace(obs, block_pose=pose, keypoints=block_keypoints(self.twin.block, pose), body_poses=body_poses)

    def set_twin_config(self, config: "TwinConfig") -> None:
        self.twin = replace(config, num_worlds=self.twin.num_worlds)
        self.policy.set_twin_config(config)
