"""Crash-safe, resumable writer of LeRobot-v3-layout datasets (see ``_format`` for the layout).

An episode is buffered in memory (bounded by ``max_episode_frames``) and committed by
``save_episode``: its data, video and episode-metadata files are written under temporary names
(``*.tmp``, which no reader globs), flushed to disk, and renamed into place, the episode metadata
last; ``meta/info.json``, ``meta/stats.json`` and ``meta/tasks.parquet`` are then replaced
atomically. ``kill -9`` at any moment leaves the committed episodes loadable; the episode in
progress is lost. The episodes metadata is the source of truth: opening a dataset for resuming
deletes leftovers of an interrupted commit and rewrites stale totals.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ._format import DATA_PATH, EPISODES_PATH, RAW_VIDEO_PATH, VIDEO_PATH, DatasetError, DatasetSpec
from ._stats import aggregate_stats, feature_stats, image_stats

__all__ = ["DatasetWriter", "check_writable", "read_committed_episodes", "write_json_atomic"]

log = logging.getLogger(__name__)


def check_writable(root: str | Path, min_free_mb: float) -> None:
    """Raise ``DatasetError`` unless ``root`` (created if missing) is a writable folder with at least
    ``min_free_mb`` [MB] free. Call before anything moves."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-probe.tmp"
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        raise DatasetError(f"cannot write the dataset at {root}: {exc.strerror or exc}") from exc
    free_mb = shutil.disk_usage(root).free / 1e6
    if free_mb < min_free_mb:
        raise DatasetError(f"only {free_mb:.0f} MB free at {root}; collecting needs at least {min_free_mb:.0f} MB "
                           f"(set min_free_mb lower or free some space)")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _arrow_type(dtype: str, shape: tuple[int, ...]):
    import pyarrow as pa

    base = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(),
            "bool": pa.bool_(), "uint8": pa.uint8()}[dtype]
    return base if shape == (1,) else pa.list_(base, int(np.prod(shape)))


def _hf_feature(dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """The Hugging Face ``datasets`` feature description LeRobot writes for a feature."""
    value = {"dtype": dtype, "_type": "Value"}
    return value if shape == (1,) else {"feature": value, "length": int(np.prod(shape)), "_type": "Sequence"}


def read_committed_episodes(root: Path) -> list[dict[str, Any]]:
    """Rows of ``meta/episodes/*/*.parquet`` sorted by episode index (committed episodes only)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    return rows


class DatasetWriter:
    """Writes episodes into ``root``.

    Args:
        root: dataset folder. A new dataset needs it absent or empty; ``resume=True`` continues one.
        spec: features and frame rate; on resume it must equal the stored one.
        twin_meta: JSON-able description of the twin (scene and cameras), stored as ``meta/twin.json``.
        min_free_mb: refuse to start (and to commit) with less free space than this [MB].
        max_episode_frames: bound on the buffered episode.
    """

    def __init__(self, root: str | Path, spec: DatasetSpec, twin_meta: dict[str, Any] | None = None,
                 resume: bool = False, min_free_mb: float = 50.0, max_episode_frames: int = 100_000) -> None:
        self.root = Path(root)
        self.spec = spec
        self.min_free_mb = min_free_mb
        self.max_episode_frames = max_episode_frames
        info_path = self.root / "meta" / "info.json"
        if info_path.exists() and not resume:
            raise DatasetError(f"{self.root} already holds a dataset: pass resume (--resume) to continue it, "
                               f"or choose another folder")
        if not info_path.exists() and self.root.exists() and any(p.name != ".write-probe.tmp" for p in self.root.iterdir()):
            raise DatasetError(f"{self.root} exists and is not a dataset (no meta/info.json): choose an empty folder")
        check_writable(self.root, min_free_mb)
        self._episodes: list[dict[str, Any]] = []
        self._tasks: dict[str, int] = {}
        if info_path.exists():
            self._open_existing(info_path, twin_meta)
        else:
            (self.root / "meta").mkdir(parents=True, exist_ok=True)
            if twin_meta is not None:
                write_json_atomic(self.root / "meta" / "twin.json", twin_meta)
            self._write_meta()
        self._buffer: dict[str, list[np.ndarray]] = {}
        self._task = ""

    # ------------------------------------------------------------------ state
    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(e["length"] for e in self._episodes))

    @property
    def episode_frames(self) -> int:
        """Frames buffered in the episode in progress."""
        return len(next(iter(self._buffer.values()))) if self._buffer else 0

    # ------------------------------------------------------------------ recording
    def add_frame(self, frame: dict[str, np.ndarray], task: str) -> None:
        """Buffer one frame: a value of the declared shape for every non-video feature."""
        keys = self.spec.frame_keys
        missing = set(keys) - set(frame)
        extra = set(frame) - set(keys)
        if missing or extra:
            raise ValueError(f"frame keys do not match the features: missing {sorted(missing)}, unknown {sorted(extra)}")
        if self.episode_frames >= self.max_episode_frames:
            raise DatasetError(f"episode longer than max_episode_frames={self.max_episode_frames}")
        if self._buffer and task != self._task:
            raise ValueError("one task per episode")
        self._task = task
        for k in keys:
            f = self.spec.features[k]
            v = np.asarray(frame[k], dtype=f.dtype).reshape(-1)
            if v.size != int(np.prod(f.shape)):
                raise ValueError(f"{k}: expected shape {f.shape}, got {np.shape(frame[k])}")
            self._buffer.setdefault(k, []).append(v)

    def set_value(self, key: str, frame: int, value) -> None:  # noqa: ANN001
        """Overwrite ``key`` of buffered frame ``frame`` (negative counts from the end), e.g. ``next.done``
        of the last frame once the episode is known to end there."""
        f = self.spec.features.get(key)
        if f is None or f.dtype == "video":
            raise KeyError(f"{key} is not a frame feature")
        self._buffer[key][frame] = np.asarray(value, dtype=f.dtype).reshape(-1)

    def clear_episode(self) -> None:
        """Drop the episode in progress (re-record)."""
        self._buffer = {}
        self._task = ""

    def save_episode(self, videos: dict[str, np.ndarray] | None = None, success: bool | None = None,
                     raw: dict[str, np.ndarray] | None = None) -> int:
        """Commit the buffered episode with its video features (key -> uint8 [T, H, W, 3]), the raw
        frames of the spec's ``raw_cameras`` (serial -> uint8 [T, H, W, 3], RGB) and, when known, whether
        the episode succeeded by the job's episode rule (the ``success`` column of ``meta/episodes``;
        per-frame ``next.success`` is coverage at that step only; when None, any frame's
        ``next.success``); returns its episode index."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ._video import encode_video

        T = self.episode_frames
        if T == 0:
            raise ValueError("save_episode: no frames buffered")
        videos = dict(videos or {})
        if set(videos) != set(self.spec.video_keys):
            raise ValueError(f"videos must hold exactly {self.spec.video_keys}, got {sorted(videos)}")
        for k, v in videos.items():
            if v.shape != (T, *self.spec.features[k].shape) or v.dtype != np.uint8:
                raise ValueError(f"{k}: expected uint8 {(T, *self.spec.features[k].shape)}, got {v.dtype} {v.shape}")
        raw = dict(raw or {})
        if set(raw) != set(self.spec.raw_cameras):
            raise ValueError(f"raw must hold exactly the cameras {sorted(self.spec.raw_cameras)}, got {sorted(raw)}")
        for serial, v in raw.items():
            h, w = self.spec.raw_cameras[serial]
            if v.shape != (T, h, w, 3) or v.dtype != np.uint8:
                raise ValueError(f"raw frames of {serial}: expected uint8 {(T, h, w, 3)}, got {v.dtype} {v.shape}")
        free_mb = shutil.disk_usage(self.root).free / 1e6
        if free_mb < self.min_free_mb:
            raise DatasetError(f"only {free_mb:.0f} MB free at {self.root}: the episode is not saved")
        ep = self.num_episodes
        if success is None:
            success = bool(np.any(self._buffer["next.success"])) if "next.success" in self._buffer else False
        chunk, file = divmod(ep, self.spec.chunks_size)
        task_index = self._tasks.setdefault(self._task, len(self._tasks))
        start = self.num_frames
        fps = self.spec.fps

        # data file
        cols: dict[str, Any] = {}
        fields = []
        hf: dict[str, Any] = {}
        for k in self.spec.frame_keys:
            f = self.spec.features[k]
            arr = np.stack(self._buffer[k])
            typ = _arrow_type(f.dtype, f.shape)
            cols[k] = pa.array(arr[:, 0] if f.shape == (1,) else list(arr), type=typ)
            fields.append(pa.field(k, typ))
            hf[k] = _hf_feature(f.dtype, f.shape)
        index_cols = {"timestamp": (np.arange(T) / fps).astype(np.float32), "frame_index": np.arange(T, dtype=np.int64),
                      "episode_index": np.full(T, ep, dtype=np.int64), "index": np.arange(start, start + T, dtype=np.int64),
                      "task_index": np.full(T, task_index, dtype=np.int64)}
        for k, v in index_cols.items():
            cols[k] = pa.array(v)
            fields.append(pa.field(k, cols[k].type))
            hf[k] = _hf_feature(str(v.dtype), (1,))
        schema = pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})
        table = pa.Table.from_pydict(cols, schema=schema)

        stats = {k: feature_stats(np.stack(self._buffer[k]).reshape(T, *self.spec.features[k].shape))
                 for k in self.spec.frame_keys}
        stats.update({k: feature_stats(v) for k, v in index_cols.items()})
        stats.update({k: image_stats(v) for k, v in videos.items()})

        row: dict[str, Any] = {"episode_index": ep, "tasks": [self._task], "length": T, "success": bool(success),
                               "data/chunk_index": chunk, "data/file_index": file,
                               "dataset_from_index": start, "dataset_to_index": start + T}
        for k in self.spec.video_keys:
            row.update({f"videos/{k}/chunk_index": chunk, f"videos/{k}/file_index": file,
                        f"videos/{k}/from_timestamp": 0.0, f"videos/{k}/to_timestamp": T / fps})
        row.update({"meta/episodes/chunk_index": chunk, "meta/episodes/file_index": file})
        for k, s in stats.items():
            for name, v in s.items():
                row[f"stats/{k}/{name}"] = np.asarray(v).reshape(-1).tolist()

        pending: list[tuple[Path, Path]] = []
        try:
            paths = [(VIDEO_PATH.format(video_key=k, chunk_index=chunk, file_index=file), frames)
                     for k, frames in videos.items()]
            paths += [(RAW_VIDEO_PATH.format(serial=s, chunk_index=chunk, file_index=file), frames)
                      for s, frames in raw.items()]
            for rel, frames in paths:
                final = self.root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.with_name(final.name + ".tmp")
                encode_video(frames, tmp, fps, **self.spec.codec)
                pending.append((tmp, final))
            final = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(final.name + ".tmp")
            pq.write_table(table, tmp)
            pending.append((tmp, final))
            final = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(final.name + ".tmp")
            pq.write_table(pa.Table.from_pylist([row]), tmp)
            pending.append((tmp, final))
            for tmp, _ in pending:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
        except OSError as exc:
            for tmp, _ in pending:
                tmp.unlink(missing_ok=True)
            raise DatasetError(f"writing episode {ep} to {self.root} failed: {exc}") from exc
        for tmp, final in pending:  # the episodes file goes last: it commits the episode
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        self._episodes.append(row)
        self._write_meta()
        self.clear_episode()
        return ep

    # ------------------------------------------------------------------ metadata
    def _write_meta(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = self.root / "meta"
        info = self.spec.info(self.num_episodes, self.num_frames, len(self._tasks))
        tasks = sorted(self._tasks.items(), key=lambda kv: kv[1])
        tmp = meta / "tasks.parquet.tmp"
        # LeRobot reads this with pandas, the task string being the frame's index (pandas metadata)
        table = pa.table({"task_index": pa.array([i for _, i in tasks], pa.int64()),
                          "task": pa.array([t for t, _ in tasks], pa.string())}).replace_schema_metadata({"pandas": _PANDAS_TASKS})
        pq.write_table(table, tmp)
        os.replace(tmp, meta / "tasks.parquet")
        write_json_atomic(meta / "stats.json", self._dataset_stats())
        write_json_atomic(meta / "info.json", info)

    def _dataset_stats(self) -> dict[str, dict[str, list]]:
        if not self._episodes:
            return {}
        out: dict[str, dict[str, list]] = {}
        keys = sorted({k.split("/")[1] for k in self._episodes[0] if k.startswith("stats/")})
        for key in keys:
            shape = (3, 1, 1) if self.spec.features.get(key, None) is not None and self.spec.features[key].dtype == "video" \
                else tuple(self.spec.features[key].shape) if key in self.spec.features else (1,)
            parts = []
            for e in self._episodes:
                parts.append({name: np.asarray(e[f"stats/{key}/{name}"]).reshape(shape if name != "count" else (1,))
                              for name in ("min", "max", "mean", "std", "count")})
            agg = aggregate_stats(parts)
            out[key] = {name: np.asarray(v).tolist() for name, v in agg.items()}
        return out

    def _open_existing(self, info_path: Path, twin_meta: dict[str, Any] | None) -> None:
        info = json.loads(info_path.read_text())
        stored = DatasetSpec.from_info(info)
        if {k: (f.dtype, f.shape) for k, f in stored.features.items()} != \
                {k: (f.dtype, f.shape) for k, f in self.spec.features.items()} or stored.fps != self.spec.fps \
                or stored.raw_cameras != self.spec.raw_cameras:
            raise DatasetError(f"cannot resume {self.root}: its features, raw cameras or fps differ from this run's "
                               f"(stored {sorted(stored.features)}, raw {sorted(stored.raw_cameras)} at {stored.fps} Hz)")
        twin_path = self.root / "meta" / "twin.json"
        if twin_meta is not None and twin_path.exists() and json.loads(twin_path.read_text()) != json.loads(json.dumps(twin_meta)):
            raise DatasetError(f"cannot resume {self.root}: the twin's scene or cameras differ from this run's")
        self._episodes = read_committed_episodes(self.root)
        for i, e in enumerate(self._episodes):
            if e["episode_index"] != i:
                raise DatasetError(f"{self.root}: episode indices are not contiguous (found {e['episode_index']} at {i})")
        self._tasks = _read_tasks(self.root)
        removed = self._remove_leftovers()
        if removed:
            log.warning("removed %d leftover file(s) of an interrupted episode in %s", removed, self.root)
        self._write_meta()

    def _remove_leftovers(self) -> int:
        """Delete ``*.tmp`` files and data/video/episode files beyond the committed episodes."""
        n = 0
        committed = {(e["data/chunk_index"], e["data/file_index"]) for e in self._episodes}
        for path in list(self.root.rglob("*.tmp")):
            path.unlink()
            n += 1
        for sub in ("data", "videos", "raw", "meta/episodes"):
            for path in (self.root / sub).rglob("file-*.*") if (self.root / sub).exists() else []:
                try:
                    key = (int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1]))
                except (IndexError, ValueError):
                    continue
                if key not in committed:
                    path.unlink()
                    n += 1
        return n


_PANDAS_TASKS = json.dumps({
    "index_columns": ["task"],
    "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                        "metadata": {"encoding": "UTF-8"}}],
    "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                 "metadata": None},
                {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
    "creator": {"library": "pyarrow", "version": "19"}, "pandas_version": "2.2.3"})


def _read_tasks(root: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    path = root / "meta" / "tasks.parquet"
    if not path.exists():
        return {}
    table = pq.read_table(path)
    # LeRobot keeps the task string as the pandas index: a "task" column when the index is named (ours),
    # "__index_level_0__" when it is not (LeRobot's own writer)
    index = (table.schema.pandas_metadata or {}).get("index_columns") or []
    names = [c for c in ["task", *[i for i in index if isinstance(i, str)]] if c in table.column_names]
    if not names or "task_index" not in table.column_names:
        raise DatasetError(f"{path} has no task strings and task_index columns (columns: {table.column_names})")
    t = table.to_pydict()
    return {str(task): int(i) for task, i in zip(t[names[0]], t["task_index"])}
