"""The training figure: loss per step (log scale), and evaluation success and mean max coverage beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_training"]


def plot_training(log: list[dict[str, Any]], path: str | Path, title: str = "training") -> Path | None:
    """Write ``path`` (PNG) from the trainer's log entries; None when there is nothing to plot yet."""
    train = [e for e in log if "loss" in e]
    evals = [e for e in log if "success_rate" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_l.plot([e["step"] for e in train], [e["loss"] for e in train], lw=1)
        ax_l.set_yscale("log")
    ax_l.set(xlabel="step", ylabel="training loss", title=title)
    ax_l.grid(alpha=0.3)
    if evals:
        steps = [e["step"] for e in evals]
        ax_e.plot(steps, [e["success_rate"] for e in evals], "o-", label="success rate")
        if "avg_max_coverage" in evals[0]:
            ax_e.plot(steps, [e["avg_max_coverage"] for e in evals], "s--", label="mean max coverage")
        ax_e.legend()
    ax_e.set(xlabel="step", ylim=(-0.02, 1.02), title="evaluation in the twin")
    ax_e.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
