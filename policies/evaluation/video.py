"""Evaluation videos: an episode's twin states rendered from above the table (the scene renderer, RGB)
with the goal's outline drawn in, written as H.264 MP4 that any player opens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twin.config import TwinConfig
from twin.rig import VirtualCameraConfig

from .batched import EpisodeTrace

__all__ = ["VIDEO_VIEW", "EpisodeVideoWriter"]

#: The videos' viewpoint: above and in front of the table, 320 x 240 px.
VIDEO_VIEW = VirtualCameraConfig("video", eye_m=(0.95, 0.0, 0.80), target_m=(0.50, 0.0, 0.0), width=320, height=240,
                                 hfov_deg=55.0)


class EpisodeVideoWriter:
    """Renders `EpisodeTrace`s of one twin to MP4 files.

    Args:
        twin: the twin the episodes ran in (block shape, goal, control rate = the video's frame rate).
        view: the camera (a fixed one).
        scene_path: a scanned scene file to render with (``twin.scene_file``); default: the nominal palette.
        device: torch device that renders.
    """

    def __init__(self, twin: TwinConfig, view: VirtualCameraConfig = VIDEO_VIEW, scene_path: str = "",
                 device: str = "cpu") -> None:
        from twin.pusht import block_keypoints

        from ..learned.images import ObservationRenderer

        if view.mount != "world":
            raise ValueError("evaluation videos need a fixed camera")
        self.view, self.fps = view, twin.control_hz
        self.renderer = ObservationRenderer(twin, (view,), device=device, scene_path=scene_path)
        goal = block_keypoints(twin.block, np.asarray(twin.goal.pose)[None])[0]  # [8, 2] world frame
        z = twin.physics.table_height_m + twin.block.thickness_m
        self._goal_px = self._project(np.c_[goal, np.full(len(goal), z)])

    def _project(self, points: np.ndarray) -> np.ndarray:
        """World points [P, 3] -> pixel coordinates [P, 2] of the view (OpenCV convention)."""
        T = np.linalg.inv(self.view.T_world_camera)
        cam = points @ T[:3, :3].T + T[:3, 3]
        K = self.view.intrinsics
        return np.c_[K.fx * cam[:, 0] / cam[:, 2] + K.cx, K.fy * cam[:, 1] / cam[:, 2] + K.cy]

    def frames(self, trace: EpisodeTrace) -> np.ndarray:
        """The episode's frames, uint8 RGB [T, H, W, 3], the goal outlined in green."""
        import cv2

        body_poses, joint_pos = trace.arrays()
        frames = self.renderer.render(body_poses, joint_pos)[self.view.serial]
        outline = np.round(self._goal_px).astype(np.int32)[None]
        for f in frames:
            cv2.polylines(f, outline, isClosed=True, color=(40, 200, 60), thickness=1, lineType=cv2.LINE_AA)
        return frames

    def write(self, trace: EpisodeTrace, path: str | Path) -> Path:
        """Render ``trace`` to ``path`` (MP4), atomically."""
        from ..dataset._video import encode_video

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        encode_video(self.frames(trace), tmp, fps=self.fps, fmt="mp4")
        tmp.replace(path)
        return path
