"""Turns the live loop's steps into dataset frames (LeRobot's convention: the observation a step's action
was taken from, the action, and the ``next.*`` outcome after it) and commits episodes.

Per step only arrays are copied (cheap, inside the control period); images of the twin are rendered
from the stored state when the episode is saved, between episodes (identical to rendering live, since
the render is a function of the state).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ._writer import DatasetWriter

__all__ = ["EpisodeRecorder", "pusht_frame", "twin_snapshot"]


def twin_snapshot(obs, body_poses: np.ndarray, world: int = 0) -> dict[str, np.ndarray]:  # noqa: ANN001
    """One world's state a frame is made of: its ``twin.env.Observation`` values and body poses [2, 7]."""
    return {"pusher_xy": obs.pusher_xy[world].copy(), "block_pose": obs.block_pose[world].copy(),
            "keypoints": obs.keypoints[world].copy(), "joint_pos": obs.joint_pos[world].copy(),
            "joint_vel": obs.joint_vel[world].copy(), "body_poses": np.array(body_poses[world], copy=True)}


def pusht_frame(pre: dict[str, np.ndarray], action, coverage: float, success: bool, success_coverage: float,  # noqa: ANN001
                q_robot: np.ndarray, correction_active: bool, by_operator: bool = False) -> dict[str, np.ndarray]:
    """A dataset frame (`_format.pusht_features`, without images): the state ``pre`` (``twin_snapshot``)
    the action [2] was taken from, and the outcome after it (coverage, per-step success, the reward as
    coverage over the success coverage, capped at 1), and whether the teleoperator rather than a policy
    chose the action (``by_operator``). ``next.done`` is set on the episode's last frame when it is saved."""
    return {
        "observation.state": np.r_[pre["pusher_xy"], pre["joint_pos"]],
        "observation.environment_state": np.r_[pre["block_pose"], pre["keypoints"].reshape(-1)],
        "action": np.asarray(action, dtype=np.float64).reshape(2),
        "next.reward": np.clip(coverage / success_coverage, 0.0, 1.0),
        "next.coverage": coverage, "next.success": success, "next.done": False,
        "twin.body_poses": pre["body_poses"].reshape(-1), "twin.joint_pos": pre["joint_pos"],
        "twin.joint_vel": pre["joint_vel"], "twin.robot_joint_pos": q_robot,
        "twin.correction_active": correction_active, "control.by_operator": by_operator,
    }


class EpisodeRecorder:
    """Records one twin world's episodes into ``writer``.

    Args:
        writer: the dataset.
        twin: the live ``twin.env.PushTEnv`` (one world) whose state is recorded.
        renderer: ``TwinRenderer`` for the ``observation.images.<camera>`` features, or None.
        task: the task string of every episode.
        raw_serials: cameras whose raw frames the dataset keeps (``DatasetSpec.raw_cameras``; latest frame
            at each step; black until the first frame arrives).
        by_operator: whether the teleoperator chose the step's action (``control.by_operator``), asked
            after each step whose action was chosen (``on_act`` was called); None: always (teleoperated
            collection). A step the loop held (waiting for the robot or the correction) is nobody's.
    """

    def __init__(self, writer: DatasetWriter, twin, renderer=None, task: str = "", raw_serials: tuple[str, ...] = (),  # noqa: ANN001
                 by_operator: Callable[[], bool] | None = None) -> None:
        self.writer = writer
        self.twin = twin
        self.renderer = renderer
        self.task = task
        self.raw_serials = tuple(raw_serials)
        self.by_operator = by_operator
        self._acted = False
        self._pre: dict[str, np.ndarray] | None = None
        self._states: list[tuple[np.ndarray, np.ndarray]] = []
        self._raw: dict[str, list[np.ndarray]] = {s: [] for s in self.raw_serials}
        self._latest_raw: dict[str, np.ndarray] = {}
        self.step_seconds = 0.0  #: time spent in on_step/on_act (recording cost inside the loop) [s]
        self.save_seconds = 0.0  #: time spent saving episodes (between episodes) [s]
        self.success_coverage = twin.config.goal.success_coverage

    def _snapshot(self, obs) -> dict[str, np.ndarray]:  # noqa: ANN001
        return twin_snapshot(obs, self.twin.body_poses())

    def on_act(self, obs) -> None:  # noqa: ANN001
        """The observation an action is about to be taken from (called before the twin steps)."""
        t0 = time.perf_counter()
        self._pre = self._snapshot(obs)
        self._acted = True
        self.step_seconds += time.perf_counter() - t0

    def on_step(self, record, frames, obs, info) -> None:  # noqa: ANN001
        """After a control step of the live loop (``LiveRunner.on_step``). Reads ``record.action``,
        ``record.q_robot`` and ``record.correction_active`` of the ``twin.live.StepRecord``."""
        t0 = time.perf_counter()
        pre = self._pre if self._pre is not None else self._snapshot(obs)
        cov = float(info["coverage"][0])
        success = bool(info["is_success"][0])
        q_robot = np.full(7, np.nan) if record.q_robot is None else np.asarray(record.q_robot, dtype=np.float64)
        by_operator = self._acted and (self.by_operator is None or bool(self.by_operator()))
        self._acted = False
        self.writer.add_frame(pusht_frame(pre, record.action, cov, success, self.success_coverage, q_robot,
                                          bool(record.correction_active), by_operator), self.task)
        self._states.append((pre["body_poses"], pre["joint_pos"]))
        if frames is not None:
            for s in self.raw_serials:
                if s in frames:
                    self._latest_raw[s] = np.array(frames[s].rgb, copy=True)
        for s in self.raw_serials:
            self._raw[s].append(self._latest_raw.get(s))
        # the next step's pre-state is this step's result unless on_act reports a fresher one
        self._pre = self._snapshot(obs)
        self.step_seconds += time.perf_counter() - t0

    @property
    def frames(self) -> int:
        return self.writer.episode_frames

    def discard(self) -> None:
        """Drop the episode in progress."""
        self.writer.clear_episode()
        self._reset_buffers()

    def save(self, success: bool | None = None) -> int | None:
        """Render the image features, commit the episode with its ``success`` label (the live loop's
        episode rule; None: any frame's coverage success); returns its index (None: nothing recorded)."""
        if self.writer.episode_frames == 0:
            self._reset_buffers()
            return None
        t0 = time.perf_counter()
        self.writer.set_value("next.done", -1, True)  # however it ended (success, time limit, operator)
        videos: dict[str, np.ndarray] = {}
        if self.renderer is not None:
            body = np.stack([b for b, _ in self._states])
            q = np.stack([j for _, j in self._states])
            videos.update({f"observation.images.{k}": v for k, v in self.renderer.render_episode(body, q).items()})
        raw: dict[str, np.ndarray] = {}
        for s in self.raw_serials:
            shape = (*self.writer.spec.raw_cameras[s], 3)
            blank = np.zeros(shape, np.uint8)
            raw[s] = np.stack([blank if f is None or f.shape != shape else f for f in self._raw[s]])
        ep = self.writer.save_episode(videos, success=success, raw=raw)
        self._reset_buffers()
        self.save_seconds += time.perf_counter() - t0
        return ep

    def _reset_buffers(self) -> None:
        self._pre = None
        self._states = []
        self._raw = {s: [] for s in self.raw_serials}
        self._latest_raw = {}

    def stats(self) -> dict[str, Any]:
        return {"step_seconds": self.step_seconds, "save_seconds": self.save_seconds}
