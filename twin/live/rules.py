"""The episode's rules: when it has succeeded, and when the twin has diverged.

Both hold state for W worlds at once: the live loop runs one (W = 1, scalars in and out), a twin
evaluation (`policies.evaluation.rules`) many, so an evaluated episode ends by the same rules as a live one.
"""

from __future__ import annotations

import numpy as np

from .config import EpisodeRules

__all__ = ["SuccessWindow", "DivergenceCheck"]


class SuccessWindow:
    """Whether an episode has succeeded: the twin's coverage of the goal, averaged over the last
    ``steps`` control steps, all confirmed by the images, is at least ``threshold`` (see
    ``EpisodeRules.success_hold_steps``); one window per world."""

    def __init__(self, threshold: float, steps: int, worlds: int = 1) -> None:
        if steps < 1 or not 0 < threshold <= 1 or worlds < 1:
            raise ValueError("success needs steps >= 1, a coverage threshold in (0, 1] and worlds >= 1")
        self.threshold = threshold
        self._window = np.zeros((worlds, steps))
        self._filled = np.zeros(worlds, dtype=np.int64)

    def update(self, coverage: float | np.ndarray, confirmed: bool | np.ndarray = True) -> bool | np.ndarray:
        """One control step's coverage [0, 1] (a float, or one per world [W]); True once the window is full
        and its mean reaches the threshold (a bool, or one per world). A non-finite coverage counts as 0; a
        step whose twin block the images have not confirmed (``confirmed=False``; a twin evaluation: the
        step touched the block) empties the window."""
        cov = np.broadcast_to(np.asarray(coverage, dtype=np.float64), self._filled.shape)
        steps = self._window.shape[1]
        self._window = np.roll(self._window, -1, axis=1)
        self._window[:, -1] = np.where(np.isfinite(cov), cov, 0.0)
        self._filled = np.where(confirmed, np.minimum(self._filled + 1, steps), 0)
        fired = (self._filled == steps) & (self._window.mean(axis=1) >= self.threshold)
        return bool(fired[0]) if np.ndim(coverage) == 0 else fired


class DivergenceCheck:
    """Whether the twin has diverged from reality (``EpisodeRules``): a non-finite state, the block far
    outside the workspace for several steps in a row (re-localisation had its chance to bring it back),
    or the correction's residual high for several frame sets in a row; one count per world."""

    def __init__(self, rules: EpisodeRules, workspace, worlds: int = 1) -> None:  # noqa: ANN001 - WorkspaceConfig
        self.rules, self.workspace = rules, workspace
        self._outside_steps = np.zeros(worlds, dtype=np.int64)

    def reset(self) -> None:
        self._outside_steps[:] = 0

    def step(self, block_pose: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One control step of every world (block poses [W, 3], whether each world's state is finite [W]):
        (diverged [W]: not finite, or outside too long; how far each block is outside the workspace [m])."""
        outside = self.workspace.distance_outside(np.where(finite[:, None], block_pose[:, :2], 0.0))
        self._outside_steps = np.where(outside > self.rules.max_outside_m, self._outside_steps + 1, 0)
        return ~finite | (self._outside_steps >= self.rules.outside_steps), outside

    def update(self, obs, bad_frames: int) -> str:  # noqa: ANN001 - twin.env.Observation
        """One control step of the live loop's world: the reason the twin diverged, or "" when it has not."""
        finite = bool(np.all(np.isfinite(obs.block_pose)) and np.all(np.isfinite(obs.joint_pos)))
        diverged, outside = self.step(obs.block_pose[:1], np.array([finite]))
        if not finite:
            return "non-finite twin state"
        if diverged[0]:
            return f"block {float(outside[0]) * 100:.0f} cm outside the workspace"
        if bad_frames >= self.rules.divergence_frames:
            return f"correction residual above {self.rules.max_residual} for {bad_frames} frames"
        return ""
