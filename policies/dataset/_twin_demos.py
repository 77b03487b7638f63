"""Demonstrations from the twin alone: a policy (the scripted expert by default) runs seeded episodes
in batched twin worlds, and every episode is written in the dataset format `realsim collect` writes
(the same frames, without camera images), fast: no live stack, no real time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from ._format import DatasetSpec, pusht_features
from ._recorder import pusht_frame, twin_snapshot
from ._writer import DatasetWriter

if TYPE_CHECKING:
    from twin.config import TwinConfig

    from ..base import Policy

__all__ = ["record_twin_demos"]


def record_twin_demos(root: str | Path, twin: "TwinConfig", seeds: list[int], twin_meta: dict[str, Any] | None = None,
                      policy_factory=None, worlds_per_batch: int = 16, only_successful: bool = False,  # noqa: ANN001
                      task: str = "push the T onto the goal", resume: bool = False, progress: bool = True
                      ) -> dict[str, Any]:
    """Run one episode per seed (``worlds_per_batch`` at a time) and write them to the dataset ``root``.

    Args:
        twin: the twin's configuration (``num_worlds`` is set per batch).
        seeds: episode seeds, in the order episodes are written.
        twin_meta: ``meta/twin.json``'s content (scene and cameras), as `realsim collect` writes it.
        policy_factory: ``(twin_config) -> Policy`` for a batch; None: the scripted expert.
        only_successful: write only episodes that succeeded.

    Returns ``{"episodes_run", "episodes_written", "successes", "frames", "seeds_written"}``.
    """
    from ..evaluation.episodes import run_episodes

    if not seeds:
        raise ValueError("no seeds to record")
    spec = DatasetSpec(fps=twin.control_hz, features=pusht_features({}))
    writer = DatasetWriter(root, spec, twin_meta=twin_meta, resume=resume)
    written, successes, frames = [], 0, 0
    bar = tqdm(total=len(seeds), desc="twin demos", unit="episode", disable=not progress)
    for start in range(0, len(seeds), worlds_per_batch):
        batch = list(seeds[start:start + worlds_per_batch])
        cfg = replace(twin, num_worlds=len(batch))
        per_world: list[list[dict[str, np.ndarray]]] = [[] for _ in batch]

        def record(obs, poses, actions, info, active) -> None:  # noqa: ANN001
            for w in np.flatnonzero(active):
                pre = twin_snapshot(obs, poses, w)
                per_world[w].append(pusht_frame(pre, actions[w], float(info["coverage"][w]), bool(info["is_success"][w]),
                                                twin.goal.success_coverage, pre["joint_pos"], False))

        policy: Policy | None = policy_factory(cfg) if policy_factory is not None else None
        result = run_episodes(cfg, batch, policy=policy, record=record)
        for w, ep in enumerate(result["per_episode"]):
            successes += ep["success"]
            if only_successful and not ep["success"]:
                continue
            per_world[w][-1]["next.done"] = True  # however it ended (success or time limit)
            for frame in per_world[w]:
                writer.add_frame(frame, task)
            writer.save_episode(success=ep["success"])
            written.append(ep["seed"])
            frames += len(per_world[w])
        bar.update(len(batch))
        bar.set_postfix(written=len(written), success=f"{successes}/{start + len(batch)}")
    bar.close()
    return {"episodes_run": len(seeds), "episodes_written": len(written), "successes": successes, "frames": frames,
            "seeds_written": written}
