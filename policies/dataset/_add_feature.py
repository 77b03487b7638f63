"""Adding a video feature to a committed dataset (``realsim dataset render``): a new viewpoint
rendered from the twin state every frame stores."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ._format import EPISODES_PATH, VIDEO_PATH, DatasetError, DatasetSpec
from ._stats import aggregate_stats, image_stats
from ._writer import check_writable, read_committed_episodes, write_json_atomic

__all__ = ["add_video_feature"]


def add_video_feature(root: str | Path, key: str, shape_hw: tuple[int, int], frames_of_episode,
                      camera: dict[str, Any] | None = None) -> str:
    """Add the video feature ``key`` to every committed episode of the dataset at ``root``.

    ``frames_of_episode(i)`` returns uint8 [T_i, H, W, 3] for episode ``i``. Videos and episode metadata
    are written first, ``meta/info.json`` last: an interrupted run leaves the dataset as it was (and can
    be run again). ``camera`` (the viewpoint's description) is appended to ``meta/twin.json``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._format import FeatureSpec
    from ._video import encode_video

    root = Path(root)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    if key in info["features"]:
        raise DatasetError(f"{root} already has the feature {key}")
    spec = DatasetSpec.from_info(info)
    h, w = shape_hw
    feature = FeatureSpec("video", (h, w, 3), ("height", "width", "channels"))
    spec = replace(spec, features={**spec.features, key: feature})  # validates the shape
    episodes = read_committed_episodes(root)
    check_writable(root, min_free_mb=10.0)
    rows = []
    for e in episodes:
        i = e["episode_index"]
        frames = np.asarray(frames_of_episode(i))
        if frames.shape != (e["length"], h, w, 3) or frames.dtype != np.uint8:
            raise ValueError(f"episode {i}: expected uint8 {(e['length'], h, w, 3)}, got {frames.dtype} {frames.shape}")
        chunk, file = e["meta/episodes/chunk_index"], e["meta/episodes/file_index"]
        final = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".tmp")
        encode_video(frames, tmp, spec.fps, **spec.codec)
        os.replace(tmp, final)
        row = dict(e)
        row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": e["length"] / spec.fps})
        for name, v in image_stats(frames).items():
            row[f"stats/{key}/{name}"] = np.asarray(v).reshape(-1).tolist()
        rows.append(row)
    for row in rows:
        path = root / EPISODES_PATH.format(chunk_index=row["meta/episodes/chunk_index"],
                                           file_index=row["meta/episodes/file_index"])
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(pa.Table.from_pylist([row]), tmp)
        os.replace(tmp, path)
    if rows:
        agg = aggregate_stats([{n: np.asarray(r[f"stats/{key}/{n}"]).reshape((3, 1, 1) if n != "count" else (1,))
                                for n in ("min", "max", "mean", "std", "count")} for r in rows])
        stats_path = root / "meta" / "stats.json"
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        stats[key] = {n: np.asarray(v).tolist() for n, v in agg.items()}
        write_json_atomic(stats_path, stats)
    twin_path = root / "meta" / "twin.json"
    if camera is not None and twin_path.exists():
        meta = json.loads(twin_path.read_text())
        meta.setdefault("rendered_cameras", []).append(camera)
        write_json_atomic(twin_path, meta)
    info["features"][key] = feature.to_json(spec.fps)
    info["video_path"] = VIDEO_PATH
    write_json_atomic(info_path, info)
    return key
