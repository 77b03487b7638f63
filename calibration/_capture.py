"""Capturing hand-eye views: drive the robot through joint configurations, let it settle, and record a
camera image with the measured joint positions at each.

The robot and camera are reached through callables, so this module depends on neither the bridge nor
the camera package:

* ``send_target(q_rad)``: command joint positions [rad], shape (7,) (e.g. ``BridgeClient.send_target``);
* ``measured(timeout_s) -> (q_rad, dq_rad_s)``: the newest measured joint state;
* ``grab(not_before_ns) -> rgb``: an RGB image captured after ``not_before_ns`` (``time.monotonic_ns``).

Targets are streamed from a background thread at ``rate_hz`` the whole time (a follower robot holds
when its target stream stops), moving at most ``max_speed_rad_s`` per joint.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ._errors import CalibrationError


@dataclasses.dataclass(frozen=True)
class CapturedView:
    """One hand-eye view: the image and the joint positions measured while it was taken.

    Attributes:
        rgb: RGB uint8 image (H, W, 3).
        q_rad: measured joint positions [rad], shape (7,), averaged over the image capture.
        q_target_rad: the commanded configuration [rad], shape (7,).
    """

    rgb: np.ndarray
    q_rad: np.ndarray
    q_target_rad: np.ndarray


class _Streamer:
    def __init__(self, send_target: Callable[[np.ndarray], object], q0: np.ndarray, rate_hz: float) -> None:
        self._send = send_target
        self._q = np.array(q0, dtype=np.float64)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._period = 1.0 / rate_hz
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="handeye-targets", daemon=True)
        self._thread.start()

    def set(self, q: np.ndarray) -> None:
        with self._lock:
            self._q = np.array(q, dtype=np.float64)

    def get(self) -> np.ndarray:
        with self._lock:
            return self._q.copy()

    def _run(self) -> None:
        t_next = time.monotonic()
        try:
            while not self._stop.is_set():
                self._send(self.get())
                t_next += self._period
                self._stop.wait(max(0.0, t_next - time.monotonic()))
        except BaseException as exc:  # handed to the owner
            self.error = exc

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def capture_hand_eye_views(
    joint_targets: Sequence[np.ndarray],
    send_target: Callable[[np.ndarray], object],
    measured: Callable[[float], tuple[np.ndarray, np.ndarray]],
    grab: Callable[[int], np.ndarray],
    *,
    max_speed_rad_s: float = 0.3,
    rate_hz: float = 50.0,
    settle_s: float = 0.5,
    reach_tolerance_rad: float = 0.01,
    still_speed_rad_s: float = 0.005,
    move_timeout_s: float = 30.0,
    on_view: Callable[[int, CapturedView], None] | None = None,
) -> list[CapturedView]:
    """Visit each configuration, wait until the arm is still, and capture one view there.

    Raises:
        CalibrationError: the arm does not reach or settle at a configuration within ``move_timeout_s``,
            or the target stream failed.
    """
    if max_speed_rad_s <= 0 or rate_hz <= 0:
        raise ValueError("max_speed_rad_s and rate_hz must be positive")
    q_now, _ = measured(2.0)
    streamer = _Streamer(send_target, q_now, rate_hz)
    views: list[CapturedView] = []
    try:
        for i, goal in enumerate(joint_targets):
            goal = np.asarray(goal, dtype=np.float64).reshape(7)
            deadline = time.monotonic() + move_timeout_s
            # Ramp the commanded pose to the goal at the speed limit.
            step = max_speed_rad_s / rate_hz
            while True:
                if streamer.error is not None:
                    raise CalibrationError(f"streaming joint targets failed: {streamer.error!r}")
                q_cmd = streamer.get()
                delta = goal - q_cmd
                if np.max(np.abs(delta)) <= step:
                    streamer.set(goal)
                    break
                streamer.set(q_cmd + delta * (step / np.max(np.abs(delta))))
                time.sleep(1.0 / rate_hz)
                if time.monotonic() > deadline:
                    raise CalibrationError(f"view {i}: commanding the move took longer than {move_timeout_s} s")
            # Wait until the measured arm is at the goal and still, then for settle_s more.
            still_since = None
            while True:
                q, dq = measured(0.05)
                now = time.monotonic()
                if np.max(np.abs(q - goal)) <= reach_tolerance_rad and np.max(np.abs(dq)) <= still_speed_rad_s:
                    still_since = still_since or now
                    if now - still_since >= settle_s:
                        break
                else:
                    still_since = None
                if now > deadline:
                    raise CalibrationError(
                        f"view {i}: the arm did not settle at the target within {move_timeout_s} s "
                        f"(error {np.max(np.abs(q - goal)):.4f} rad, speed {np.max(np.abs(dq)):.4f} rad/s)"
                    )
            q_before, _ = measured(0.05)
            rgb = grab(time.monotonic_ns())
            q_after, _ = measured(0.05)
            if np.max(np.abs(q_after - q_before)) > reach_tolerance_rad:
                raise CalibrationError(f"view {i}: the arm moved while the image was taken")
            view = CapturedView(np.asarray(rgb), (q_before + q_after) / 2.0, goal)
            views.append(view)
            if on_view is not None:
                on_view(i, view)
    finally:
        streamer.close()
    return views


__all__ = ["CapturedView", "capture_hand_eye_views"]
