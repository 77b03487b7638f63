"""Two small filters of the block tracker: the average of measurements at rest, and the wait after a push.
Poses are (x [m], y [m], yaw [rad]) in the world frame."""

from __future__ import annotations

import numpy as np

from ..pusht import planar_pose_error
from ..transforms import wrap_angle

__all__ = ["RestAverage", "PushSettle"]


class RestAverage:
    """Exponential average of a block's measured poses (x [m], y [m], yaw [rad], world frame) while
    nothing pushes it: successive frames then see the same pose, and following each one's noise would
    shake the twin's block. A measurement further than the window from the average (something moved
    the block), a push in between (``pushed_motion`` changed) or a measurement that is not ``plain``
    (saturated, re-localised) starts afresh.

    Args:
        alpha: the average moves by this fraction of a measurement's offset from it (1 = no averaging).
        window_m, window_rad: the largest offset that is averaged.
    """

    def __init__(self, alpha: float, window_m: float, window_rad: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"the averaging fraction must be in (0, 1], got {alpha}")
        self.alpha, self.window_m, self.window_rad = alpha, window_m, window_rad
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (average, pushed motion then)

    def clear(self) -> None:
        self._last = None

    def update(self, pose: np.ndarray, pushed_motion: np.ndarray, plain: bool = True) -> np.ndarray | None:
        """The averaged pose for measurement ``pose``, or None when it is taken as it is."""
        last, self._last = self._last, None
        if not plain or self.alpha >= 1.0:
            return None
        averaged = None
        if last is not None and np.array_equal(last[1], pushed_motion):
            (off,), (off_yaw,) = planar_pose_error(pose, last[0])
            if off < self.window_m and off_yaw < self.window_rad:
                step = np.asarray(pose, dtype=np.float64) - last[0]
                step[2] = wrap_angle(step[2])
                averaged = last[0] + self.alpha * step
        self._last = ((np.array(pose, dtype=np.float64) if averaged is None else averaged), np.array(pushed_motion, dtype=np.float64))
        return averaged


class PushSettle:
    """Whether the policy waits after a push until the twin's block agrees with the images.

    ``push_ended()`` when the pusher leaves the block starts the wait; every frame set then either ends
    it (its measurement and the twin's block agree within ``tol_m`` [m] and ``tol_rad`` [rad]) or uses
    up one of ``max_frames`` (frame sets without a usable measurement count too, so an occluded block
    cannot hold the policy for ever). ``cancel()`` ends the wait (a new push, a new episode).
    """

    def __init__(self, tol_m: float, tol_rad: float, max_frames: int) -> None:
        if not (tol_m > 0 and tol_rad > 0) or max_frames < 0:
            raise ValueError("the tolerances must be > 0 and max_frames >= 0")
        self.tol_m, self.tol_rad, self.max_frames = tol_m, tol_rad, max_frames
        self._left = 0

    @property
    def waiting(self) -> bool:
        return self._left > 0

    def push_ended(self) -> None:
        self._left = self.max_frames

    def cancel(self) -> None:
        self._left = 0

    def update(self, measured_pose: np.ndarray | None, twin_pose: np.ndarray) -> None:
        """One frame set: ``measured_pose`` (x, y, yaw; None when the frame set gave no measurement)
        against the twin's block ``twin_pose`` (x, y, yaw) now, world frame."""
        if self._left <= 0:
            return
        if measured_pose is not None and np.all(np.isfinite(measured_pose)):
            (off,), (off_yaw,) = planar_pose_error(np.asarray(measured_pose)[None], np.asarray(twin_pose))
            if off <= self.tol_m and off_yaw <= self.tol_rad:
                self._left = 0
                return
        self._left -= 1
