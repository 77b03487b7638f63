"""Per-feature statistics (min, max, mean, std, count) of episodes and their aggregation over a dataset."""

from __future__ import annotations

import numpy as np

__all__ = ["feature_stats", "image_stats", "aggregate_stats", "STAT_NAMES"]

STAT_NAMES = ("min", "max", "mean", "std", "count")


def feature_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over frames of ``values`` [T, ...] (per element of the feature's shape); bools count as 0/1."""
    x = np.asarray(values, dtype=np.float64)
    return {"min": x.min(axis=0), "max": x.max(axis=0), "mean": x.mean(axis=0), "std": x.std(axis=0),
            "count": np.array([len(x)], dtype=np.int64)}


def image_stats(frames: np.ndarray, max_samples: int = 30) -> dict[str, np.ndarray]:
    """Per-channel stats [3, 1, 1] of uint8 frames [T, H, W, 3] scaled to [0, 1] (LeRobot's convention),
    from at most ``max_samples`` evenly spaced frames; ``count`` is the number of frames sampled."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_samples)).round().astype(int))
    per = np.ascontiguousarray(frames[idx]).reshape(-1, 3)  # uint8 [S*H*W, 3]
    hist = np.stack([np.bincount(per[:, c], minlength=256) for c in range(3)]).astype(np.float64)  # [3, 256]
    levels = np.arange(256) / 255.0
    n = hist.sum(1)
    mean = hist @ levels / n
    var = hist @ levels**2 / n - mean**2
    nz = hist > 0
    shape = (3, 1, 1)
    return {"min": (nz.argmax(1) / 255.0).reshape(shape), "max": ((255 - nz[:, ::-1].argmax(1)) / 255.0).reshape(shape),
            "mean": mean.reshape(shape), "std": np.sqrt(np.maximum(var, 0.0)).reshape(shape),
            "count": np.array([len(idx)], dtype=np.int64)}


def aggregate_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode stats into dataset stats (count-weighted mean, pooled variance)."""
    if not parts:
        raise ValueError("no stats to aggregate")
    counts = np.array([float(p["count"][0]) for p in parts])
    means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
    stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
    w = (counts / counts.sum()).reshape((-1,) + (1,) * (means.ndim - 1))
    mean = (w * means).sum(0)
    var = (w * (stds**2 + (means - mean) ** 2)).sum(0)
    return {"min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean, "std": np.sqrt(np.maximum(var, 0.0)),
            "count": np.array([int(counts.sum())], dtype=np.int64)}
