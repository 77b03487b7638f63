"""What a live run leaves in its run folder: ``metrics.json``, a rerun recording (``run.rrd``: camera
frames beside twin renders, block pose twin vs truth, joint targets vs follower) and ``errors.png``
(twin-vs-truth block error over time)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..transforms import wrap_angle
from .metrics import StepRecord

__all__ = ["LiveRecorder", "to_plain"]

log = logging.getLogger(__name__)


class LiveRecorder:
    """Collects a live run's steps into ``out``. ``render_every`` frame sets also log a twin render."""

    def __init__(self, out: Path, rrd: bool = True, render_every: int = 5, corrector=None, twin=None) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.render_every = render_every
        self.corrector, self.twin = corrector, twin
        self.rec = None
        self._frames_logged = 0
        if rrd:
            import rerun as rr

            self.rec = rr.RecordingStream("realsim-deploy")
            self.rec.save(str(self.out / "run.rrd"))

    def on_step(self, r: StepRecord, frames, obs, info) -> None:
        if self.rec is None:
            return
        import rerun as rr

        rec = self.rec
        rec.set_time("time", duration=r.t_s)
        rec.log("block/twin", rr.Scalars(r.twin_block), )
        if r.truth_block is not None:
            rec.log("block/truth", rr.Scalars(r.truth_block))
            err = np.linalg.norm(r.twin_block[:2] - r.truth_block[:2]) * 1e3
            rec.log("block/error_mm", rr.Scalars(err))
        rec.log("joints/twin_target", rr.Scalars(r.q_twin))
        if r.q_robot is not None:
            rec.log("joints/follower", rr.Scalars(r.q_robot))
        rec.log("task/coverage", rr.Scalars(r.coverage))
        if frames is not None:
            for serial in frames:
                rec.log(f"cameras/{serial}/observed", rr.Image(frames[serial].rgb))
            if self.corrector is not None and self.twin is not None and self._frames_logged % self.render_every == 0:
                import torch

                with torch.no_grad():
                    renders = self.corrector.render(self.twin.body_poses()[0], self.twin.link_poses()[0])
                for serial, (color, _, _) in renders.items():
                    rec.log(f"cameras/{serial}/twin", rr.Image((color.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)))
            self._frames_logged += 1

    def finish(self, summary: dict[str, Any], records: list[StepRecord]) -> None:
        (self.out / "metrics.json").write_text(json.dumps(to_plain(summary), indent=2))
        self._plot(records)
        if self.rec is not None:
            self.rec.flush()

    def _plot(self, records: list[StepRecord]) -> None:
        recs = [r for r in records if r.truth_block is not None]
        if not recs:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.array([r.t_s for r in recs])
        twin = np.array([r.twin_block for r in recs])
        truth = np.array([r.truth_block for r in recs])
        pos = np.linalg.norm(twin[:, :2] - truth[:, :2], axis=1) * 1e3
        yaw = np.rad2deg(np.abs(wrap_angle(twin[:, 2] - truth[:, 2])))
        fig, ax = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
        ax[0].plot(t, pos)
        ax[0].set_ylabel("block position error [mm]")
        ax[1].plot(t, yaw, color="tab:orange")
        ax[1].set_ylabel("block yaw error [deg]")
        ax[1].set_xlabel("time [s]")
        for a in ax:
            a.grid(alpha=0.3)
            for k in sorted({r.episode for r in recs})[1:]:
                a.axvline(next(r.t_s for r in recs if r.episode == k), color="grey", lw=0.8, ls="--")
        fig.suptitle("twin vs truth")
        fig.tight_layout()
        fig.savefig(self.out / "errors.png", dpi=100)
        plt.close(fig)


def to_plain(x: Any) -> Any:
    """``x`` with numpy scalars and arrays, tuples and non-string keys turned into what ``json`` writes."""
    if isinstance(x, dict):
        return {str(k): to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
