"""The episode's rules: when it has succeeded, and when the twin has diverged."""

from __future__ import annotations

from collections import deque

import numpy as np

from .config import EpisodeRules

__all__ = ["SuccessWindow", "DivergenceCheck"]


class SuccessWindow:
    """Whether an episode has succeeded: the twin's coverage of the goal, averaged over the last
    ``steps`` control steps, all confirmed by the images, is at least ``threshold`` (see
    ``EpisodeRules.success_hold_steps``)."""

    def __init__(self, threshold: float, steps: int) -> None:
        if steps < 1 or not 0 < threshold <= 1:
            raise ValueError("success needs steps >= 1 and a coverage threshold in (0, 1]")
        self.threshold = threshold
        self._recent: deque[float] = deque(maxlen=steps)

    def update(self, coverage: float, confirmed: bool = True) -> bool:
        """One control step's coverage [0, 1]; True once the window is full and its mean reaches the
        threshold. A non-finite coverage counts as 0; a step whose twin block the images have not
        confirmed (``confirmed=False``) empties the window."""
        if not confirmed:
            self._recent.clear()
            return False
        self._recent.append(coverage if np.isfinite(coverage) else 0.0)
        return len(self._recent) == self._recent.maxlen and float(np.mean(self._recent)) >= self.threshold


class DivergenceCheck:
    """Whether the twin has diverged from reality (``EpisodeRules``): a non-finite state, the block far
    outside the workspace for several steps in a row (re-localisation had its chance to bring it back),
    or the correction's residual high for several frame sets in a row."""

    def __init__(self, rules: EpisodeRules, workspace) -> None:  # noqa: ANN001 - twin.config.WorkspaceConfig
        self.rules, self.workspace = rules, workspace
        self._outside_steps = 0

    def reset(self) -> None:
        self._outside_steps = 0

    def update(self, obs, bad_frames: int) -> str:  # noqa: ANN001 - twin.env.Observation
        """One control step: the reason the twin diverged, or "" when it has not."""
        r = self.rules
        if not (np.all(np.isfinite(obs.block_pose)) and np.all(np.isfinite(obs.joint_pos))):
            return "non-finite twin state"
        outside = float(self.workspace.distance_outside(obs.block_pose[0, :2]))
        self._outside_steps = self._outside_steps + 1 if outside > r.max_outside_m else 0
        if self._outside_steps >= r.outside_steps:
            return f"block {outside * 100:.0f} cm outside the workspace"
        if bad_frames >= r.divergence_frames:
            return f"correction residual above {r.max_residual} for {bad_frames} frames"
        return ""
