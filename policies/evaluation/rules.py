"""How a twin evaluation's episodes end and are judged.

Three rules (``EvaluateConfig.episode_end``):

- ``"live"`` (the default): as `realsim deploy` ends a live episode (`twin.live.rules`, ``EpisodeRules``),
  vectorised over W worlds. An episode ends when the coverage, averaged over the last
  ``success_hold_steps`` control steps none of which touched the block, reaches the task's success
  coverage plus ``success_margin``; when the block has been more than ``max_outside_m`` outside the
  workspace for ``outside_steps`` steps in a row (the live loop stops the robot: the twin diverged);
  when the state is no longer finite; or at the time limit. It is a success when the coverage at its end
  reaches the task's success coverage, as a live episode is judged by the real block where it ends. A
  policy that sweeps the block through the goal and on, or parks it at the goal's edge, fails here as it
  would on the robot.
- ``"live_belief"``: as ``"live"``, but the success window reads the coverage of the block as the policy
  observes it (with the evaluation's observation noise), as the live loop's window reads the twin's
  estimate; the episode is still judged by the exact block where it ended. Live, an episode can end on an
  estimate that covers the goal while the real block does not quite; this rule lets the twin produce that
  failure (with exact observations it is ``"live"``).
- ``"first_reach"``: gym-pusht's, as the twin's environment terminates: a success at the first step whose
  coverage reaches the success coverage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from twin.live.rules import DivergenceCheck, SuccessWindow
from twin.pusht import pusher_step_touches

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation
    from twin.live.config import EpisodeRules

__all__ = ["EPISODE_ENDS", "LiveEpisodeEnd"]

EPISODE_ENDS = ("live", "live_belief", "first_reach")


class LiveEpisodeEnd:
    """The live loop's episode rules for W twin worlds (see the module docstring): its `SuccessWindow` and
    `DivergenceCheck`, a step that touches the block standing for one the images have not confirmed.

    Args:
        rules: the live loop's ``EpisodeRules``.
        twin: the twin (its goal's success coverage, workspace, block and pusher radius).
        contact_margin_m: the block tracker's contact margin [m] (``TrackerConfig.contact_margin_m``): a
            step whose pusher path comes this close to the block counts as touching it.
        worlds: W.
        on_belief: the success window reads the coverage of the block as the policy observes it
            (``"live_belief"``), not the exact one; `update` is given that coverage.
    """

    def __init__(self, rules: "EpisodeRules", twin: "TwinConfig", contact_margin_m: float, worlds: int,
                 on_belief: bool = False) -> None:
        self.twin, self.on_belief = twin, on_belief
        self.reach_m = twin.physics.pusher_radius_m + contact_margin_m
        self.success = SuccessWindow(twin.goal.success_coverage + rules.success_margin, rules.success_hold_steps, worlds)
        self.divergence = DivergenceCheck(rules, twin.workspace, worlds)

    def update(self, before: "Observation", after: "Observation", coverage: np.ndarray, active: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray]:
        """One control step of every world (exact observations ``before`` and ``after`` it, the coverage [W]
        after it that the success window reads): (the success window fired [W], the twin diverged [W]); only
        ``active`` worlds are judged. Touches and divergence are read off the exact states."""
        W = len(coverage)
        finite = np.all(np.isfinite(after.block_pose), axis=1) & np.all(np.isfinite(after.joint_pos), axis=1)
        finite &= np.all(np.isfinite(after.pusher_xy), axis=1)
        touching = np.zeros(W, dtype=bool)
        for i in np.flatnonzero(active & finite):
            touching[i] = pusher_step_touches(self.twin.block, before.block_pose[i], after.block_pose[i],
                                              before.pusher_xy[i], after.pusher_xy[i], self.reach_m)
        fired = self.success.update(coverage, confirmed=~touching)
        diverged, _ = self.divergence.step(after.block_pose, finite)
        return active & fired, active & diverged
