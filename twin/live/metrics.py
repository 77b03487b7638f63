"""What the live loop records per step, and its fidelity figures against a truth observer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..transforms import wrap_angle

__all__ = ["StepRecord", "TruthAlignment", "aligned_stats", "pooled_follower", "run_summary", "twin_vs_truth"]


@dataclass
class StepRecord:
    """What one control step of the live loop saw and did (world frame, metres, radians)."""

    t_s: float
    episode: int
    twin_block: np.ndarray
    truth_block: np.ndarray | None
    correction_active: bool
    correction_s: float
    correction_loss: float
    correction_target: np.ndarray  #: (x, y, yaw) the visual forces pull towards (nan when inactive)
    correction_rate: np.ndarray  #: the observed block velocity carried by the target
    stalled: bool
    q_twin: np.ndarray
    q_robot: np.ndarray | None
    #: when (monotonic ns) the real scene is expected to match the twin's state of this step
    shown_at_ns: int
    action: np.ndarray
    coverage: float


class TruthAlignment:
    """Twin-vs-truth block errors at the moment each twin state is meant for (a record's
    ``shown_at_ns``; the twin runs ahead of the real scene by the control period plus the robot's lag),
    taken while the run goes: the truth channel keeps a bounded history (``TruthSubscriber``, 10 000
    messages, 500 s at 20 Hz), too short to align a long run's records at its end."""

    #: Newest truth messages searched per step: several seconds at the world's rate, far more than a
    #: record waits for its truth.
    RECENT = 256

    def __init__(self) -> None:
        self.index: list[int] = []  # record index
        self.pos_m: list[float] = []
        self.yaw_rad: list[float] = []
        self._next = 0  # first record not yet aligned

    def update(self, records: list, history, recent: int | None = RECENT) -> None:  # noqa: ANN001
        """Align the records whose truth has arrived. ``history``: the truth messages in time order
        (dicts with ``t_ns`` and ``block_pose``); ``recent``: search only the newest this many (None: all)."""
        hist = list(history) if recent is None or len(history) <= recent else [history[i] for i in range(len(history) - recent, len(history))]
        if len(hist) < 2:
            return
        t = np.array([h["t_ns"] for h in hist], dtype=np.float64)
        poses = np.array([h["block_pose"] for h in hist], dtype=np.float64)
        while self._next < len(records):
            r = records[self._next]
            if r.shown_at_ns and r.shown_at_ns > t[-1] and recent is not None:
                return  # its truth has not arrived yet
            self._next += 1
            if not r.shown_at_ns:
                continue
            i = int(np.searchsorted(t, r.shown_at_ns))
            if i <= 0 or i >= len(t) or t[i] - t[i - 1] > 0.2e9:
                continue
            a = (r.shown_at_ns - t[i - 1]) / (t[i] - t[i - 1])
            truth = poses[i - 1] + a * (poses[i] - poses[i - 1])
            self.index.append(self._next - 1)
            self.pos_m.append(float(np.linalg.norm(r.twin_block[:2] - truth[:2])))
            self.yaw_rad.append(float(abs(wrap_angle(r.twin_block[2] - truth[2]))))


def _error_stats(pos: np.ndarray, yaw: np.ndarray) -> dict[str, float]:
    return {"pos_err_mm_median": float(np.median(pos) * 1e3), "pos_err_mm_p95": float(np.percentile(pos, 95) * 1e3),
            "yaw_err_deg_median": float(np.rad2deg(np.median(yaw))),
            "yaw_err_deg_p95": float(np.rad2deg(np.percentile(yaw, 95)))}


def twin_vs_truth(records: list[StepRecord]) -> dict[str, float] | None:
    """The twin's block against the truth received at the same step: position [mm] and yaw [deg]
    median and 95th percentile, or None without truth."""
    recs = [r for r in records if r.truth_block is not None]
    if not recs:
        return None
    twin = np.array([r.twin_block for r in recs])
    truth = np.array([r.truth_block for r in recs])
    return _error_stats(np.linalg.norm(twin[:, :2] - truth[:, :2], axis=1), np.abs(wrap_angle(twin[:, 2] - truth[:, 2])))


def aligned_stats(pos_m: np.ndarray, yaw_rad: np.ndarray) -> dict[str, float]:
    """The same statistics of time-aligned errors (``TruthAlignment``)."""
    return _error_stats(pos_m, yaw_rad)


def pooled_follower(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """The follower's figures over all episodes: tracking RMS weighted by each episode's samples, the
    median lag [ms]."""
    followed = [e["follower"] for e in episodes if "follower" in e and e["follower"]["samples"] > 0]

    def pooled(key: str) -> float:
        vals = [(f[key], f["samples"]) for f in followed if np.isfinite(f[key])]
        if not vals:
            return float("nan")
        return float(np.sqrt(sum(v * v * n for v, n in vals) / sum(n for _, n in vals)))

    lags = [f["lag_ms"] for f in followed if np.isfinite(f["lag_ms"])]
    return {"follower_lag_ms": float(np.median(lags)) if lags else float("nan"),
            "follower_tracking_rms_rad_lag_compensated": pooled("tracking_rms_rad_lag_compensated"),
            "follower_tracking_rms_rad": pooled("tracking_rms_rad")}


def run_summary(runner) -> dict[str, Any]:  # noqa: ANN001 - LiveRunner
    """A live run's per episode results and figures: success, twin vs truth, follower, correction rate,
    bridge, cameras, the measured block, counters."""
    out: dict[str, Any] = {"episodes": runner.episodes,
                           "success_rate": float(np.mean([e["success"] for e in runner.episodes])) if runner.episodes else 0.0}
    same_step = twin_vs_truth(runner.records)
    if same_step is not None:
        out["twin_vs_truth"] = same_step
        if any("truth_success" in e for e in runner.episodes):
            out["truth_success_rate"] = float(np.mean([e.get("truth_success", False) for e in runner.episodes]))
        aligned = runner.aligned_errors()
        if aligned is not None:
            out["twin_vs_truth_aligned"] = aligned_stats(aligned[1], aligned[2])
    follower = pooled_follower(runner.episodes)
    out["follower_lag_ms"] = follower["follower_lag_ms"]
    out["follower_tracking_rms_rad_lag_compensated"] = follower["follower_tracking_rms_rad_lag_compensated"]
    corr = [r.correction_s for r in runner.records if r.correction_active]
    out["correction_hz"] = float(1.0 / np.median(corr)) if corr else 0.0
    out["corrections"] = len(corr)
    out["follower_tracking_rms_rad"] = follower["follower_tracking_rms_rad"]
    stats = runner.streamer.client.stats()
    out["bridge"] = {"latency_p50_us": stats.latency_p50_us, "latency_p99_us": stats.latency_p99_us,
                     "loss": stats.loss, "sent": stats.n_sent}
    cam = runner.camera.stats()
    out["camera"] = {"frames_received": cam.frames_received, "frames_dropped": cam.frames_dropped,
                     "stale_sets": cam.stale_sets}
    if runner.block_fit is not None:
        b = runner.block_fit.shape
        out["block_measured_mm"] = {"bar_length": b.bar_length_m * 1e3, "bar_width": b.bar_width_m * 1e3,
                                    "stem_width": b.stem_width_m * 1e3, "stem_length": b.stem_length_m * 1e3,
                                    "used": runner.config.twin.block == b}
    out["counters"] = dict(runner.counters) | {f"correction_{k}": v for k, v in runner.corrector.counters.items()}
    return out
