"""A backend that records every command crossing the backend boundary, and the motion a robot would
measure from those commands (finite differences of the commanded positions) against the caps."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from ..backends.base import Backend, BackendCommand, BackendState
from ..backends.sim import SimBackend
from ..limits import EffectiveLimits

__all__ = ["Record", "RecordingBackend", "motion_ratios", "assert_commands_within_limits"]


@dataclass(frozen=True)
class Record:
    t_ns: int  # server issue time
    t_rx_ns: int  # when the backend received it
    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray
    target_seq: int
    target_t_send_ns: int
    fresh: bool = False  # the first command after ticks that commanded nothing (a new run of commands)


class RecordingBackend(Backend):
    """Wraps a real backend and records every command that crosses the backend boundary."""

    def __init__(self, inner: Backend | None = None, max_records: int = 500_000) -> None:
        self.inner = inner or SimBackend()
        self.name = f"recording({self.inner.name})"
        self.rate_hz = self.inner.rate_hz
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._max = max_records
        self.n_idle = 0
        self._fresh = True
        self.error_flags = 0  # injected into read_state
        self.n_recoveries = 0
        self.disconnected_ns: int | None = None  # when the server released the backend

    @property
    def limits(self):
        return self.inner.limits

    @limits.setter
    def limits(self, value) -> None:
        self.inner.limits = value

    def connect(self, timeout_s: float) -> None:
        self.inner.connect(timeout_s)

    def disconnect(self) -> None:
        self.disconnected_ns = time.monotonic_ns()
        self.inner.disconnect()

    def read_state(self) -> BackendState:
        st = self.inner.read_state()
        return replace(st, error_flags=st.error_flags | self.error_flags) if self.error_flags else st

    def command(self, cmd: BackendCommand) -> None:
        t_rx = time.monotonic_ns()
        with self._lock:
            if len(self._records) < self._max:
                ddq = np.full(7, np.nan) if cmd.ddq_rad_s2 is None else cmd.ddq_rad_s2.copy()
                self._records.append(Record(cmd.t_ns, t_rx, cmd.q_rad.copy(), cmd.dq_rad_s.copy(), ddq,
                                            cmd.target_seq, cmd.target_t_send_ns, self._fresh))
            self._fresh = False
        self.inner.command(cmd)

    def idle(self, t_ns: int) -> None:
        self.n_idle += 1
        self._fresh = True
        self.inner.idle(t_ns)

    def recover(self, timeout_s: float) -> None:
        """Clears the injected error flags (as a robot's recovery would clear its reflex)."""
        self.n_recoveries += 1
        self.error_flags = 0

    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


_ULP_Q = np.spacing(2.0 * np.pi)  # rounding of one float64 joint position [rad]


def motion_ratios(records: list[Record], lim: EffectiveLimits) -> dict:
    """What a robot measures from the command stream, against the caps. Per run of consecutive commands
    (a run starts after ticks that commanded nothing), velocity, acceleration and jerk are the finite
    differences of the commanded *positions* over each tick (its length as the server integrates it:
    the time since the previous command, at most ``max_tick_dt_s``), starting from the first command's
    stated velocity and acceleration. Returns the largest ratio to each cap, the largest excursion past
    a position limit [rad] (<= 0 inside), and the largest disagreement between a stated velocity and
    the positions' [rad/s].

    Numerical tolerance: float64 rounding of positions (``_ULP_Q``) grows through the differences:
    velocity by 2 u / h, acceleration by the sum of the two velocity errors / h, jerk by the sum of the
    two acceleration errors / h (propagated tick by tick); a value counts as a violation only when it
    exceeds its cap (times 1 + 1e-9) by more than that bound."""
    out = dict(v=0.0, a=0.0, j=0.0, pos_over=-np.inf, v_mismatch=0.0, v_excess=0.0, a_excess=0.0,
               j_excess=0.0, n=len(records), violations=0)
    if not records:
        return out
    q = np.stack([r.q for r in records])
    past = np.maximum(q - lim.q_hi_rad, lim.q_lo_rad - q).max(axis=1)
    out["pos_over"] = float(past.max())
    out["violations"] = int(np.sum(past > 1e-9))
    vmax, amax, jmax = lim.dq_max_rad_s, lim.ddq_max_rad_s2, lim.dddq_max_rad_s3
    starts = [i for i, r in enumerate(records) if i == 0 or r.fresh] + [len(records)]
    for s0, s1 in zip(starts[:-1], starts[1:]):
        run = records[s0:s1]
        v_prev, a_prev = run[0].dq, np.nan_to_num(run[0].ddq)
        ev_prev = ea_prev = 0.0  # rounding bounds of the previous velocity and acceleration
        out["v"] = max(out["v"], float(np.max(np.abs(v_prev) / vmax)))
        for k in range(1, len(run)):
            dt = (run[k].t_ns - run[k - 1].t_ns) * 1e-9
            assert dt > 0, "commands out of order"
            h = min(max(dt, 1e-6), lim.config.max_tick_dt_s)
            v = (run[k].q - run[k - 1].q) / h
            a = (v - v_prev) / h
            j = (a - a_prev) / h
            out["v"] = max(out["v"], float(np.max(np.abs(v) / vmax)))
            out["a"] = max(out["a"], float(np.max(np.abs(a) / amax)))
            out["j"] = max(out["j"], float(np.max(np.abs(j) / jmax)))
            ev = 2 * _ULP_Q / h
            ea = (ev + ev_prev) / h
            ej = (ea + ea_prev) / h
            excess = (float(np.max(np.abs(v) - vmax * (1 + 1e-9) - ev)),
                      float(np.max(np.abs(a) - amax * (1 + 1e-9) - ea)),
                      float(np.max(np.abs(j) - jmax * (1 + 1e-9) - ej)))
            ev_prev, ea_prev = ev, ea
            out["violations"] += int(max(excess) > 0.0)
            for key, e in zip(("v_excess", "a_excess", "j_excess"), excess):
                out[key] = max(out[key], e)
            out["v_mismatch"] = max(out["v_mismatch"], float(np.max(np.abs(v - run[k].dq))))
            v_prev, a_prev = v, a
    return out


def assert_commands_within_limits(records: list[Record], lim: EffectiveLimits, tol: float = 1e-9) -> dict:
    """Every command finite and inside the position limits, and velocity, acceleration and jerk (see
    `motion_ratios`) within their caps up to float rounding. Returns the ratios."""
    assert records, "no command reached the backend"
    q = np.stack([r.q for r in records])
    dq = np.stack([r.dq for r in records])
    assert np.all(np.isfinite(q)) and np.all(np.isfinite(dq))
    assert np.all(np.diff([r.t_ns for r in records]) > 0)
    m = motion_ratios(records, lim)
    assert m["pos_over"] <= tol, f"command past a position limit by {m['pos_over']} rad"
    assert m["v_excess"] <= 0.0, f"velocity above its cap: {m}"
    assert m["a_excess"] <= 0.0, f"acceleration above its cap: {m}"
    assert m["j_excess"] <= 0.0, f"jerk above its cap: {m}"
    assert m["v_mismatch"] < 1e-6, f"stated velocity is not the positions': {m}"
    return m
