"""The twin-vs-live comparison of an evaluation folder: every policy with both a twin evaluation
(``<name>/eval_info.json``) and live episodes (``live/<name>.json``) on the same seeds, combined into
``comparison.json`` (`correlation.correlation_report`) and ``comparison.png`` (twin vs live success).

Live episodes run in real time, so they can be run in parts (a few policies at a time into the same
folder, `realsim evaluate --compare-live --out DIR`); each part adds its ``live/<name>.json`` and the
comparison is computed again over all of them (`realsim evaluate --combine DIR` does only that).

``live/<name>.json``: ``{"policy", "per_episode": [{"seed", "success", "coverage", "twin_success",
"reason"}], ...}`` with ``success`` and ``coverage`` the simulated workspace's hidden block's, scored
with the task's T at the episode's end (on hardware, where no truth is read, the live twin's success).

The figures compare each policy's twin rate over all its twin episodes with its live rate. Beside them the
report pairs episodes seed by seed: per policy ``twin_on_live_seeds`` (the twin's rate on the live seeds
only) and ``episode_agreement`` (the share of live seeds whose twin episode had the same outcome), and over
all policies ``pearson_r_live_seeds`` and ``episode_agreement``: how much of a gap is sampling, and how much
is the twin judging the same start differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .correlation import correlation_report, pearson_r, scatter_plot
from .report import write_json

__all__ = ["live_record", "combine", "comparison_table", "FIGURES"]

# The report's headline figures, in the order the last line of `realsim evaluate --combine` prints them.
FIGURES = ("policies", "pearson_r", "spearman_rho", "mmrv", "best_ranked_first", "twin_episodes", "live_episodes",
           "episode_agreement", "pearson_r_live_seeds")


def live_record(policy: str, episodes: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``live/<name>.json`` from a live run's episodes (`twin.live.LiveRunner.episodes`, with truth)."""
    per = [{"seed": int(e["seed"]), "success": bool(e.get("truth_success", e["success"])),
            "coverage": float(e.get("truth_coverage", float("nan"))), "twin_success": bool(e["success"]),
            "reason": e.get("reason", "")} for e in episodes]
    rate = sum(p["success"] for p in per) / len(per) if per else float("nan")
    return {"policy": policy, "per_episode": per, "success_rate": rate, "episodes": len(per)} | (extra or {})


def combine(folder: str | Path) -> dict[str, Any] | None:
    """Compare every policy of ``folder`` that has both parts; writes ``comparison.json`` and ``comparison.png``
    and returns the report (None when fewer than two policies have both). Live seeds must be twin seeds."""
    folder = Path(folder)
    names, twin, live, n_twin, n_live, paired = [], [], [], [], [], []
    for path in sorted((folder / "live").glob("*.json")):
        name = path.stem
        twin_path = folder / name / "eval_info.json"
        if not twin_path.is_file():
            continue
        info, rec = json.loads(twin_path.read_text()), json.loads(path.read_text())
        twin_seeds = {e["seed"] for e in info["per_episode"]}
        live_seeds = [e["seed"] for e in rec["per_episode"]]
        if not live_seeds or not set(live_seeds) <= twin_seeds:
            raise ValueError(f"{name}: live seeds {sorted(set(live_seeds) - twin_seeds)[:5]} were not evaluated in the twin")
        names.append(name)
        twin.append(info["aggregated"]["pc_success"] / 100.0)
        live.append(sum(e["success"] for e in rec["per_episode"]) / len(live_seeds))
        n_twin.append(len(info["per_episode"]))
        n_live.append(len(live_seeds))
        paired.append(_paired(info["per_episode"], rec["per_episode"]))
    if len(names) < 2:
        return None
    report = correlation_report(names, twin, live, n_twin, n_live)
    for p, extra in zip(report["per_policy"], paired):
        p.update(extra)
    report["episode_agreement"] = float(np.average([p["episode_agreement"] for p in paired], weights=n_live))
    report["pearson_r_live_seeds"] = pearson_r([p["twin_on_live_seeds"] for p in paired], live)
    write_json(folder / "comparison.json", report)
    scatter_plot(report, folder / "comparison.png")
    return report


def _paired(twin_episodes: list[dict[str, Any]], live_episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The twin's outcome on each live seed: its rate there and the share of seeds where both agree."""
    twin_by_seed = {int(e["seed"]): bool(e["success"]) for e in twin_episodes}
    on_live = [twin_by_seed[int(e["seed"])] for e in live_episodes]
    agree = [t == bool(e["success"]) for t, e in zip(on_live, live_episodes)]
    return {"twin_on_live_seeds": float(np.mean(on_live)), "episode_agreement": float(np.mean(agree))}


def comparison_table(report: dict[str, Any]) -> str:
    """The comparison as text: per policy twin and live success with intervals, then the figures."""
    width = max(len("policy"), *(len(p["policy"]) for p in report["per_policy"]))
    lines = [f"{'policy':<{width}}  twin   (95%)            live   (95%)            episodes twin/live  "
             "twin on live seeds  same outcome"]
    for p in sorted(report["per_policy"], key=lambda p: -p["live"]):
        lines.append(f"{p['policy']:<{width}}  {p['twin']:.2f}  [{p['twin_ci95'][0]:.2f}, {p['twin_ci95'][1]:.2f}]   "
                     f"{p['live']:.2f}  [{p['live_ci95'][0]:.2f}, {p['live_ci95'][1]:.2f}]   "
                     f"{p['twin_episodes']:>5}/{p['live_episodes']:<5}        "
                     f"{p['twin_on_live_seeds']:.2f}                {p['episode_agreement']:.2f}")
    lines.append(f"Pearson r {report['pearson_r']:.3f}, Spearman rho {report['spearman_rho']:.3f}, MMRV "
                 f"{report['mmrv']:.3f}, best live policy ranked first: {report['best_ranked_first']}")
    lines.append(f"seed by seed: the twin's outcome equals the live one in {100 * report['episode_agreement']:.0f} % "
                 f"of live episodes; Pearson r of the twin on the live seeds only {report['pearson_r_live_seeds']:.3f}")
    return "\n".join(lines)
