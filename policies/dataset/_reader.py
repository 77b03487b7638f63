"""Reading and validating datasets written by ``DatasetWriter`` (LeRobot v3 layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ._format import CODEBASE_VERSION, DATA_PATH, INDEX_FEATURES, RAW_VIDEO_PATH, VIDEO_PATH, DatasetError, DatasetSpec
from ._writer import _read_tasks, read_committed_episodes

__all__ = ["DatasetReader", "validate_dataset"]

#: ``meta/info.json`` fields of LeRobot's v3 format and their JSON types.
INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "codebase_version": str, "robot_type": (str, type(None)), "total_episodes": int, "total_frames": int,
    "total_tasks": int, "chunks_size": int, "data_files_size_in_mb": int, "video_files_size_in_mb": int,
    "fps": int, "splits": dict, "data_path": str, "video_path": (str, type(None)), "features": dict,
}
EPISODE_FIELDS = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                  "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index")
VIDEO_INFO_FIELDS = ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map", "video.fps",
                     "video.channels", "has_audio")


class DatasetReader:
    """Read access to the committed episodes of a dataset at ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DatasetError(f"{self.root} is not a dataset (no meta/info.json)")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        self.spec = DatasetSpec.from_info(self.info)
        self.episodes = read_committed_episodes(self.root)
        self.tasks = _read_tasks(self.root)
        twin = self.root / "meta" / "twin.json"
        self.twin_meta: dict[str, Any] | None = json.loads(twin.read_text()) if twin.exists() else None
        stats = self.root / "meta" / "stats.json"
        self.stats: dict[str, Any] = json.loads(stats.read_text()) if stats.exists() else {}

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(e["length"] for e in self.episodes))

    @property
    def fps(self) -> float:
        return self.spec.fps

    def data_path(self, episode: int) -> Path:
        e = self.episodes[episode]
        return self.root / DATA_PATH.format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])

    def video_path(self, key: str, episode: int) -> Path:
        e = self.episodes[episode]
        return self.root / VIDEO_PATH.format(video_key=key, chunk_index=e[f"videos/{key}/chunk_index"],
                                             file_index=e[f"videos/{key}/file_index"])

    def raw_video_path(self, serial: str, episode: int) -> Path:
        e = self.episodes[episode]
        return self.root / RAW_VIDEO_PATH.format(serial=serial, chunk_index=e["data/chunk_index"],
                                                 file_index=e["data/file_index"])

    def episode(self, episode: int) -> dict[str, np.ndarray]:
        """The frames of one episode: every non-video feature [T, *shape] and the index columns [T]."""
        import pyarrow.parquet as pq

        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} not in [0, {self.num_episodes})")
        table = pq.read_table(self.data_path(episode))
        e = self.episodes[episode]
        out: dict[str, np.ndarray] = {}
        for k in self.spec.frame_keys:
            f = self.spec.features[k]
            col = table.column(k).combine_chunks()
            if f.shape == (1,):
                arr = col.to_numpy(zero_copy_only=False).reshape(-1, 1)
            else:
                arr = np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(table), *f.shape)
            out[k] = arr.astype(f.dtype)
        for k in INDEX_FEATURES:
            out[k] = table.column(k).to_numpy()
        sel = out["episode_index"] == e["episode_index"]
        return {k: v[sel] for k, v in out.items()}

    def episode_success(self, episode: int) -> bool:
        """Whether an episode succeeded: its ``success`` label (the job's episode rule, e.g. the live
        loop's success window) when the dataset has one, else whether any frame's ``next.success``
        (coverage at that step) is set."""
        label = self.episodes[episode].get("success")
        if label is not None:
            return bool(label)
        data = self.episode(episode)
        return bool(data["next.success"].any()) if "next.success" in data else False

    def video(self, key: str, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded frames uint8 [T, H, W, 3] and their timestamps [T] [s] of a video feature."""
        from ._video import decode_video

        if key not in self.spec.video_keys:
            raise KeyError(f"{key} is not a video feature; video features: {self.spec.video_keys}")
        frames, times = decode_video(self.video_path(key, episode))
        e = self.episodes[episode]
        t0, t1 = e[f"videos/{key}/from_timestamp"], e[f"videos/{key}/to_timestamp"]
        keep = (times >= t0 - 1e-6) & (times < t1 - 1e-6)
        return frames[keep], times[keep] - t0

    def raw_video(self, serial: str, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """A camera's raw frames uint8 [T, H, W, 3] (RGB, the latest frame at each step; black before the
        first) and their timestamps [T] [s] for one episode."""
        from ._video import decode_video

        if serial not in self.spec.raw_cameras:
            raise KeyError(f"no raw frames of camera {serial!r}; cameras with raw frames: {sorted(self.spec.raw_cameras)}")
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} not in [0, {self.num_episodes})")
        return decode_video(self.raw_video_path(serial, episode))


def validate_dataset(root: str | Path, decode_videos: bool = True) -> list[str]:
    """Check a dataset against LeRobot's v3 layout field by field; returns the problems found (empty: valid)."""
    import pyarrow.parquet as pq

    root = Path(root)
    problems: list[str] = []
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        return [f"missing {info_path}"]
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"meta/info.json is not JSON: {exc}"]
    for name, typ in INFO_FIELDS.items():
        if name not in info:
            problems.append(f"info.json lacks {name!r}")
        elif not isinstance(info[name], typ) or (typ is int and isinstance(info[name], bool)):
            problems.append(f"info.json {name!r} has type {type(info[name]).__name__}")
    if problems:
        return problems
    if info["codebase_version"] != CODEBASE_VERSION:
        problems.append(f"codebase_version is {info['codebase_version']!r}, expected {CODEBASE_VERSION!r}")
    if info["data_path"] != DATA_PATH:
        problems.append(f"data_path is {info['data_path']!r}, expected {DATA_PATH!r}")
    for k, dt in INDEX_FEATURES.items():
        f = info["features"].get(k)
        if f is None or f.get("dtype") != dt or f.get("shape") != [1]:
            problems.append(f"feature {k!r} must be {{dtype: {dt}, shape: [1]}}, got {f}")
    videos = []
    for k, f in info["features"].items():
        if not isinstance(f, dict) or not {"dtype", "shape", "names"} <= set(f):
            problems.append(f"feature {k!r} lacks dtype/shape/names")
            continue
        if not isinstance(f["shape"], list) or not all(isinstance(d, int) and d > 0 for d in f["shape"]):
            problems.append(f"feature {k!r} has a bad shape {f['shape']}")
        if f["names"] is not None and len(f["names"]) != int(np.prod(f["shape"])) and f["dtype"] not in ("video", "image"):
            problems.append(f"feature {k!r}: {len(f['names'])} names for shape {f['shape']}")
        if f["dtype"] == "video":
            videos.append(k)
            missing = [x for x in VIDEO_INFO_FIELDS if x not in f.get("info", {})]
            if missing:
                problems.append(f"video feature {k!r} lacks info fields {missing}")
    if videos and info["video_path"] != VIDEO_PATH:
        problems.append(f"video_path is {info['video_path']!r}, expected {VIDEO_PATH!r}")
    if problems:
        return problems
    reader = DatasetReader(root)
    eps = reader.episodes
    if info["total_episodes"] != len(eps):
        problems.append(f"info.json total_episodes {info['total_episodes']} != {len(eps)} episodes in meta/episodes")
    if info["total_frames"] != reader.num_frames:
        problems.append(f"info.json total_frames {info['total_frames']} != {reader.num_frames} in meta/episodes")
    if info["total_tasks"] != len(reader.tasks):
        problems.append(f"info.json total_tasks {info['total_tasks']} != {len(reader.tasks)} in meta/tasks.parquet")
    if info["splits"].get("train") != f"0:{len(eps)}":
        problems.append(f"splits.train is {info['splits'].get('train')!r}, expected '0:{len(eps)}'")
    stats_keys = set(reader.stats)
    for k in info["features"]:
        if k not in stats_keys and eps:
            problems.append(f"meta/stats.json lacks {k!r}")
    leftovers = sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))
    if leftovers:
        problems.append(f"leftover temporary files of an interrupted write: {leftovers[:5]}")
    expected_from = 0
    for i, e in enumerate(eps):
        missing = [x for x in EPISODE_FIELDS if x not in e]
        missing += [f"videos/{k}/{x}" for k in videos for x in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
                    if f"videos/{k}/{x}" not in e]
        if missing:
            problems.append(f"episode {i}: metadata lacks {missing}")
            continue
        if e["episode_index"] != i:
            problems.append(f"episode indices are not contiguous at {i} (found {e['episode_index']})")
        if e["dataset_from_index"] != expected_from or e["dataset_to_index"] - e["dataset_from_index"] != e["length"]:
            problems.append(f"episode {i}: dataset_from/to_index {e['dataset_from_index']}..{e['dataset_to_index']} "
                            f"do not follow (expected from {expected_from}, length {e['length']})")
        expected_from = e["dataset_to_index"]
        path = reader.data_path(i)
        if not path.is_file():
            problems.append(f"episode {i}: missing {path.relative_to(root)}")
            continue
        table = pq.read_table(path)
        cols = set(table.column_names)
        want = set(info["features"]) - set(videos)
        if cols != want:
            problems.append(f"episode {i}: data columns differ from features: missing {sorted(want - cols)}, "
                            f"extra {sorted(cols - want)}")
            continue
        data = reader.episode(i)
        T = len(data["index"])
        if T != e["length"]:
            problems.append(f"episode {i}: {T} rows, metadata says {e['length']}")
        if not np.array_equal(data["frame_index"], np.arange(T)) or \
                not np.array_equal(data["index"], np.arange(e["dataset_from_index"], e["dataset_from_index"] + T)):
            problems.append(f"episode {i}: frame_index/index are not contiguous")
        if not np.allclose(data["timestamp"], np.arange(T) / info["fps"], atol=1e-4):
            problems.append(f"episode {i}: timestamps are not frame_index / fps")
        # the video features, and the cameras' raw frames kept beside them: (name, file, decoder, frame shape)
        streams = [(k, reader.video_path(k, i), reader.video, k, tuple(info["features"][k]["shape"])) for k in videos]
        streams += [(f"raw frames of {s}", reader.raw_video_path(s, i), reader.raw_video, s, (h, w, 3))
                    for s, (h, w) in reader.spec.raw_cameras.items()]
        for name, vp, decode, key, shape in streams:
            if not vp.is_file():
                problems.append(f"episode {i}: missing {vp.relative_to(root)}")
            elif decode_videos:
                frames, _ = decode(key, i)
                if len(frames) != e["length"] or frames.shape[1:] != shape:
                    problems.append(f"episode {i}: {name} has {len(frames)} frames of {frames.shape[1:]}, "
                                    f"expected {e['length']} of {shape}")
    return problems
