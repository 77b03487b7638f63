"""What an evaluation writes: per policy an ``eval_info.json`` in LeRobot's shape, and a summary table
across policies.

``eval_info.json`` (the field names of LeRobot's ``lerobot_eval``, plus ours):
``{"per_episode": [{"episode_ix", "seed", "success", "max_reward", "sum_reward", "max_coverage", "steps",
"coverage", "end", "reached"}],
"aggregated": {"pc_success", "avg_max_reward", "avg_sum_reward", "eval_s", "eval_ep_s", "pc_success_ci95",
"avg_max_coverage", "episodes"}, "video_paths": [...], "policy": ..., "twin": {...}}``. Rewards are the
twin's (gym-pusht's ``clip(coverage / success_coverage, 0, 1)`` per step), ``pc_success`` in percent and
its 95 % Wilson interval ``pc_success_ci95`` in percent too; ``coverage`` is the coverage where the episode
ended, ``end`` why it ended and ``reached`` whether any step reached the success coverage
(`policies.evaluation.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import success_interval

__all__ = ["eval_info", "write_json", "summary_table"]


def eval_info(results: Sequence[dict[str, Any]], eval_s: float, video_paths: Sequence[str] = (),
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``eval_info.json`` of one policy from its per-episode results (in episode order) and the wall
    time of its evaluation [s]."""
    if not results:
        raise ValueError("no episodes to report")
    n = len(results)
    success = np.array([r["success"] for r in results], dtype=float)
    ci = success_interval(float(success.mean()), n)
    info = {
        "per_episode": [{"episode_ix": i, "seed": int(r["seed"]), "success": bool(r["success"]),
                         "max_reward": float(r["max_reward"]), "sum_reward": float(r["sum_reward"]),
                         "max_coverage": float(r["max_coverage"]), "steps": int(r["steps"])}
                        | {k: r[k] for k in ("coverage", "end", "reached") if k in r}
                        for i, r in enumerate(results)],
        "aggregated": {"pc_success": float(success.mean() * 100),
                       "avg_max_reward": float(np.mean([r["max_reward"] for r in results])),
                       "avg_sum_reward": float(np.mean([r["sum_reward"] for r in results])),
                       "eval_s": float(eval_s), "eval_ep_s": float(eval_s) / n,
                       "pc_success_ci95": [100 * ci[0], 100 * ci[1]],
                       "avg_max_coverage": float(np.mean([r["max_coverage"] for r in results])),
                       "episodes": n},
        "video_paths": [str(p) for p in video_paths],
    }
    return info | (extra or {})


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (a temporary file renamed into place), folders made."""
    from ..dataset._writer import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)
    return path


def summary_table(infos: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of policies (name -> eval_info), best success first."""
    rows = sorted(infos.items(), key=lambda kv: -kv[1]["aggregated"]["pc_success"])
    width = max([len("policy")] + [len(name) for name in infos])
    lines = [f"{'policy':<{width}}  success  95% interval     avg max reward  avg max coverage  episodes  s/episode"]
    for name, info in rows:
        a = info["aggregated"]
        lo, hi = a["pc_success_ci95"]
        lines.append(f"{name:<{width}}  {a['pc_success']:6.1f}%  [{lo:5.1f}, {hi:5.1f}]%  {a['avg_max_reward']:14.3f}  "
                     f"{a['avg_max_coverage']:16.3f}  {a['episodes']:8d}  {a['eval_ep_s']:9.2f}")
    return "\n".join(lines)
