"""How well the twin's success rates predict the live ones, across policies: Pearson r, Spearman rho,
MMRV, whether the best live policy is ranked first, and a scatter plot.

MMRV (mean maximum rank violation, as SIMPLER defines it): for policies ``i`` and ``j`` a rank violation
is ``|live_i - live_j|`` when the twin orders them the other way from live (``(twin_i > twin_j) !=
(live_i > live_j)``, SIMPLER's strict comparison: with ``i`` ahead live and tied in the twin, row ``i``
counts it); MMRV is the mean over ``i`` of the largest violation in row ``i`` (0 when the twin orders
every pair as live does; lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["mmrv", "pearson_r", "spearman_rho", "best_ranked_first", "correlation_report", "scatter_plot"]


def _pair(twin: Sequence[float], live: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, v = np.asarray(twin, dtype=np.float64), np.asarray(live, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1 or len(t) < 2:
        raise ValueError(f"need one twin and one live rate per policy, for at least 2 policies (got {t.shape}, {v.shape})")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise ValueError("success rates must be finite")
    return t, v


def mmrv(twin: Sequence[float], live: Sequence[float]) -> float:
    """Mean maximum rank violation of the twin's rates against the live ones (see the module docstring)."""
    t, v = _pair(twin, live)
    disagree = (t[:, None] > t[None, :]) != (v[:, None] > v[None, :])
    violation = np.abs(v[:, None] - v[None, :]) * disagree
    return float(violation.max(axis=1).mean())


def pearson_r(twin: Sequence[float], live: Sequence[float]) -> float:
    """Pearson correlation of the rates (NaN when either side is constant)."""
    t, v = _pair(twin, live)
    if np.ptp(t) == 0 or np.ptp(v) == 0:
        return float("nan")
    return float(np.corrcoef(t, v)[0, 1])


def spearman_rho(twin: Sequence[float], live: Sequence[float]) -> float:
    """Spearman rank correlation (ties get their average rank; NaN when either side is constant)."""
    from scipy.stats import rankdata

    t, v = _pair(twin, live)
    return pearson_r(rankdata(t), rankdata(v))


def best_ranked_first(twin: Sequence[float], live: Sequence[float]) -> bool:
    """Whether a policy with the best live rate is among those the twin ranks first."""
    t, v = _pair(twin, live)
    return bool(np.any((t == t.max()) & (v == v.max())))


def correlation_report(names: Sequence[str], twin: Sequence[float], live: Sequence[float],
                       twin_episodes: Sequence[int], live_episodes: Sequence[int]) -> dict[str, Any]:
    """The figures of a twin-vs-live comparison, and per policy the two rates with 95 % intervals."""
    from .metrics import success_interval

    t, v = _pair(twin, live)
    policies = [{"policy": n, "twin": float(a), "live": float(b), "twin_ci95": success_interval(float(a), int(ne)),
                 "live_ci95": success_interval(float(b), int(nl)), "twin_episodes": int(ne), "live_episodes": int(nl)}
                for n, a, b, ne, nl in zip(names, t, v, twin_episodes, live_episodes)]
    return {"policies": len(policies), "pearson_r": pearson_r(t, v), "spearman_rho": spearman_rho(t, v),
            "mmrv": mmrv(t, v), "best_ranked_first": best_ranked_first(t, v),
            "twin_episodes": int(np.sum(twin_episodes)), "live_episodes": int(np.sum(live_episodes)),
            "per_policy": policies}


def scatter_plot(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG of twin vs live success per policy, with 95 % intervals on both axes and the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 5.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="twin = live")
    markers = "osD^vP*Xh<>"  # points that coincide stay apart by marker and colour; names in the legend
    for k, p in enumerate(sorted(report["per_policy"], key=lambda p: (-p["live"], -p["twin"]))):
        tl, th = p["twin_ci95"]
        ll, lh = p["live_ci95"]
        ax.errorbar(p["twin"], p["live"], xerr=[[p["twin"] - tl], [th - p["twin"]]],
                    yerr=[[p["live"] - ll], [lh - p["live"]]], fmt=markers[k % len(markers)], capsize=3,
                    color=plt.get_cmap("tab10")(k % 10), label=f"{p['policy']}  ({p['twin']:.2f} / {p['live']:.2f})")
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="success in the twin", ylabel="success live",
           title=f"r = {report['pearson_r']:.3f}, rho = {report['spearman_rho']:.3f}, MMRV = {report['mmrv']:.3f}")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, title="policy  (twin / live)", title_fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
