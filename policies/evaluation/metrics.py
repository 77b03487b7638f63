"""Figures of evaluations: success intervals, and recovery after a disturbance."""

from __future__ import annotations

import numpy as np

__all__ = ["success_interval", "recovery_times"]


def success_interval(rate: float | None, episodes: int) -> list[float] | None:
    """95 % Wilson interval [low, high] of a success rate measured over ``episodes`` episodes (None when
    there is no rate): with a dozen episodes one success more or less moves the rate by 8 points, and the
    interval says how far apart two rates must be to differ."""
    if rate is None or episodes < 1:
        return None
    from scipy.stats import binomtest

    ci = binomtest(round(rate * episodes), episodes).proportion_ci(0.95, method="wilson")
    return [round(float(ci.low), 3), round(float(ci.high), 3)]


def recovery_times(disturbance_ends_s: list[float | None], t_s: np.ndarray, error_m: np.ndarray,
                   tolerance_m: float = 0.005, hold_s: float = 0.3) -> list[float]:
    """Per disturbance, how long after it ended [s] the twin was back within ``tolerance_m`` of the truth
    and stayed there for ``hold_s``: from the first step at most 0.5 s before the end whose following
    ``hold_s`` are all within the tolerance (0 when already back at the end). ``inf`` when it never
    was; disturbances whose end is unknown (None) are skipped.

    Args:
        disturbance_ends_s: when each disturbance ended [s] (the truth stopped reporting it).
        t_s: step times [s] of the twin-vs-truth errors ``error_m`` [m], in time order.
    """
    t_s, error_m = np.asarray(t_s, dtype=np.float64), np.asarray(error_m, dtype=np.float64)
    out = []
    for t_end in disturbance_ends_s:
        if t_end is None:
            continue
        after = [(t, p) for t, p in zip(t_s, error_m) if t >= t_end - 0.5]
        for j in range(len(after)):
            window = [p for t, p in after[j:] if t - after[j][0] <= hold_s]
            if after[j][0] >= t_end - 0.5 and all(p < tolerance_m for p in window):
                out.append(max(0.0, after[j][0] - t_end))
                break
        else:
            out.append(float("inf"))
    return out
