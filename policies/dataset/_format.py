"""The dataset's on-disk format: LeRobot's v3 layout, its features, ``meta/info.json`` and validation.

Layout under the dataset root (``{chunk}``/``{file}`` are zero-padded to three digits)::

    meta/info.json                                   schema, totals, path templates
    meta/stats.json                                  per-feature min/max/mean/std/count over all frames
    meta/tasks.parquet                               task string (index) -> task_index
    meta/episodes/chunk-{c}/file-{f}.parquet         one row per episode: lengths, file indices, stats
    meta/twin.json                                   the twin's scene and camera configuration
    data/chunk-{c}/file-{f}.parquet                  one row per frame
    videos/{video_key}/chunk-{c}/file-{f}.mp4        one video stream per image feature
    raw/{serial}/chunk-{c}/file-{f}.mp4              the cameras' raw frames (optional, see below)

The cameras' raw frames are not LeRobot features: LeRobot makes every video feature an image input of a
policy, and its policies need those to share one shape, which a camera's frames and a rendered view do not.
They are listed in ``info.json`` under ``realsim_raw_cameras`` (serial -> height, width), which LeRobot
ignores, are read with ``DatasetReader.raw_video`` and share the episodes' commit (below).

Every episode gets its own data, video and episode-metadata files (file index = episode index modulo
``chunks_size``): an episode is committed by renaming finished files into place, the episodes file
last and ``info.json`` after it, so a crash loses at most the episode in progress (see ``_writer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CODEBASE_VERSION", "DATA_PATH", "VIDEO_PATH", "RAW_VIDEO_PATH", "EPISODES_PATH", "DatasetError", "DatasetSpec",
           "FeatureSpec", "pusht_features", "STATE_NAMES", "ENV_STATE_NAMES"]

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
RAW_VIDEO_PATH = "raw/{serial}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
#: Columns every LeRobot frame carries besides the features a dataset declares.
INDEX_FEATURES: dict[str, str] = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                                  "index": "int64", "task_index": "int64"}

STATE_NAMES = ["pusher_x", "pusher_y"] + [f"joint_{i}" for i in range(1, 8)]
ENV_STATE_NAMES = ["block_x", "block_y", "block_yaw"] + [f"keypoint_{i}_{a}" for i in range(8) for a in "xy"]
BODY_POSE_NAMES = [f"{body}_{c}" for body in ("block", "pusher") for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]


class DatasetError(RuntimeError):
    """A dataset cannot be written or read: unwritable path, full disk, broken layout, schema mismatch."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: ``dtype`` is a numpy dtype name or "video"; ``shape`` per frame."""

    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None

    def to_json(self, fps: float) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape),
                               "names": list(self.names) if self.names is not None else None}
        if self.dtype == "video":
            h, w, c = self.shape
            out["info"] = {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                           "video.is_depth_map": False, "video.fps": int(round(fps)), "video.channels": c,
                           "has_audio": False}
        return out


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset holds: frame rate [Hz], robot type, features (excluding the index columns) and the
    cameras whose raw frames it keeps beside them (serial -> (height, width) [px])."""

    fps: float
    features: dict[str, FeatureSpec]
    raw_cameras: dict[str, tuple[int, int]] = field(default_factory=dict)
    robot_type: str = "franka_panda_pusht_twin"
    chunks_size: int = 1000
    #: LeRobot's size targets, recorded in info.json (each episode has its own files here).
    data_files_size_in_mb: int = 100
    video_files_size_in_mb: int = 500
    codec: dict[str, Any] = field(default_factory=lambda: {"crf": 18, "preset": "veryfast"})

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.chunks_size < 1:
            raise ValueError("chunks_size must be >= 1")
        clash = set(self.features) & set(INDEX_FEATURES)
        if clash:
            raise ValueError(f"features may not redefine the index columns {sorted(clash)}")
        for key, f in self.features.items():
            if f.dtype == "video":
                if len(f.shape) != 3 or f.shape[2] != 3 or f.shape[0] % 2 or f.shape[1] % 2:
                    raise ValueError(f"video feature {key} must be [H, W, 3] with even H and W, got {f.shape}")
            else:
                np.dtype(f.dtype)  # raises TypeError for unknown names
        for serial, (h, w) in self.raw_cameras.items():
            if not serial or "/" in serial or h <= 0 or w <= 0 or h % 2 or w % 2:
                raise ValueError(f"raw camera {serial!r} needs a name without '/' and an even (height, width), got {(h, w)}")

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.dtype == "video"]

    @property
    def frame_keys(self) -> list[str]:
        """Features stored in the data parquet files."""
        return [k for k, f in self.features.items() if f.dtype != "video"]

    def info(self, total_episodes: int, total_frames: int, total_tasks: int) -> dict[str, Any]:
        """``meta/info.json`` for these totals."""
        feats = {k: f.to_json(self.fps) for k, f in self.features.items()}
        for k, dt in INDEX_FEATURES.items():
            feats[k] = {"dtype": dt, "shape": [1], "names": None}
        out = {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": total_episodes, "total_frames": total_frames, "total_tasks": total_tasks,
            "chunks_size": self.chunks_size, "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb, "fps": int(round(self.fps)),
            "splits": {"train": f"0:{total_episodes}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None, "features": feats,
        }
        if self.raw_cameras:
            out["realsim_raw_cameras"] = {s: {"height": h, "width": w, "path": RAW_VIDEO_PATH}
                                          for s, (h, w) in self.raw_cameras.items()}
        return out

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "DatasetSpec":
        """The spec stored in an ``info.json`` (raises ``DatasetError`` when it is not one)."""
        try:
            feats = {k: FeatureSpec(v["dtype"], tuple(v["shape"]), None if v.get("names") is None else tuple(v["names"]))
                     for k, v in info["features"].items() if k not in INDEX_FEATURES}
            raw = {s: (int(v["height"]), int(v["width"])) for s, v in info.get("realsim_raw_cameras", {}).items()}
            return cls(fps=float(info["fps"]), features=feats, raw_cameras=raw, robot_type=info.get("robot_type", ""),
                       chunks_size=int(info["chunks_size"]),
                       data_files_size_in_mb=int(info.get("data_files_size_in_mb", 100)),
                       video_files_size_in_mb=int(info.get("video_files_size_in_mb", 500)))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"info.json does not describe a dataset: {exc!r}") from exc


def pusht_features(image_cameras: dict[str, tuple[int, int]]) -> dict[str, FeatureSpec]:
    """The features of a PushT twin dataset.

    Args:
        image_cameras: twin-render viewpoint name -> (height, width) [px]: ``observation.images.<name>``.
    """
    f: dict[str, FeatureSpec] = {
        # LeRobot-facing features (float32, world frame, metres and radians)
        "observation.state": FeatureSpec("float32", (9,), tuple(STATE_NAMES)),
        "observation.environment_state": FeatureSpec("float32", (19,), tuple(ENV_STATE_NAMES)),
        "action": FeatureSpec("float32", (2,), ("target_x", "target_y")),
        "next.reward": FeatureSpec("float32", (1,)),
        "next.coverage": FeatureSpec("float32", (1,)),
        "next.success": FeatureSpec("bool", (1,)),
        "next.done": FeatureSpec("bool", (1,)),
        # the twin's full state, exact (float64), for re-rendering and re-expressing observations
        "twin.body_poses": FeatureSpec("float64", (14,), tuple(BODY_POSE_NAMES)),
        "twin.joint_pos": FeatureSpec("float64", (7,), tuple(f"joint_{i}" for i in range(1, 8))),
        "twin.joint_vel": FeatureSpec("float64", (7,), tuple(f"joint_{i}" for i in range(1, 8))),
        "twin.robot_joint_pos": FeatureSpec("float64", (7,), tuple(f"joint_{i}" for i in range(1, 8))),
        "twin.correction_active": FeatureSpec("bool", (1,)),
        # who chose the action: the teleoperator (a person, or the virtual operator) rather than a policy
        "control.by_operator": FeatureSpec("bool", (1,)),
    }
    for name, (h, w) in image_cameras.items():
        f[f"observation.images.{name}"] = FeatureSpec("video", (h, w, 3), ("height", "width", "channels"))
    return f
