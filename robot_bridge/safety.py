"""The robot-side safety layer's checks: pure functions, no I/O, no sockets, no clocks (times are
arguments).

Every backend sits behind these checks and the motion limiter (`robot_bridge.motion`); the server
applies them to every message and every tick and no client setting can turn them off. Each function
returns what may be sent together with a tuple of `Violation` records: a clamp or a rejection is always a
record (which the server counts and logs), never a silent edit. See ``robot_bridge/design.md`` for why
each check exists.

Joint vectors are numpy arrays of shape (7,) in Franka joint order: positions [rad], velocities
[rad/s], accelerations [rad/s^2], jerks [rad/s^3].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .limits import FRANKA_PANDA_LIMITS, N_JOINTS, EffectiveLimits, JointLimits, SafetyConfig, effective_limits
from .motion import MotionState, tick_length
from .protocol import Reject

__all__ = [
    "JointLimits",
    "FRANKA_PANDA_LIMITS",
    "SafetyConfig",
    "EffectiveLimits",
    "Violation",
    "TargetDecision",
    "effective_limits",
    "check_sequence",
    "check_timing",
    "check_target",
    "interpolate_reference",
    "check_command",
    "watchdog_expired",
]


@dataclass(frozen=True, slots=True)
class Violation:
    """One refused or clamped quantity. ``joint`` is 0-based, or None when not joint-specific."""

    reason: Reject
    detail: str
    joint: int | None = None
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True, slots=True)
class TargetDecision:
    """Outcome of `check_target`: the target to adopt (None when rejected) and the violations."""

    q_rad: np.ndarray | None
    dq_rad_s: np.ndarray | None
    violations: tuple[Violation, ...]

    @property
    def accepted(self) -> bool:
        return self.q_rad is not None


def check_sequence(seq: int, last_seq: int) -> tuple[Violation, ...]:
    """Sequence numbers must strictly increase within a session (duplicates and reordering refused)."""
    if seq == last_seq:
        return (Violation(Reject.DUPLICATE, f"seq {seq} already seen"),)
    if seq < last_seq:
        return (Violation(Reject.REORDERED, f"seq {seq} after {last_seq}"),)
    return ()


def check_timing(seq: int, last_seq: int, t_send_ns: int, now_ns: int, offset_ns: int | None,
                 config: SafetyConfig) -> tuple[Violation, ...]:
    """Sequence and age checks of one message.

    Args:
        seq: the message's sequence number; ``last_seq`` the newest one already seen (-1 if none).
        t_send_ns: the sender's send time [ns, sender clock].
        now_ns: receive time [ns, receiver clock].
        offset_ns: receiver clock minus sender clock [ns], or None if not yet estimated.
    """
    v = check_sequence(seq, last_seq)
    if v:
        return v
    if offset_ns is None:
        return (Violation(Reject.CLOCK_UNSYNCED, "no clock offset estimate yet"),)
    age_s = (now_ns - (t_send_ns + offset_ns)) * 1e-9
    if age_s > config.max_message_age_s:
        return (Violation(Reject.STALE, f"age {age_s * 1e3:.1f} ms", value=age_s, limit=config.max_message_age_s),)
    if age_s < -config.max_future_s:
        return (Violation(Reject.FUTURE, f"sent {-age_s * 1e3:.1f} ms in the future", value=age_s,
                          limit=-config.max_future_s),)
    return ()


def _worst(diff: np.ndarray, bound: np.ndarray | float) -> tuple[int, float]:
    excess = np.abs(diff) - bound
    j = int(np.argmax(excess))
    return j, float(diff[j])


def _target_ok(q: np.ndarray, dq, ref: np.ndarray, limits: "EffectiveLimits", bound: float) -> bool:
    """True when a target passes every check of `check_target` (scalar loop; NaN fails every test)."""
    if q.shape != (N_JOINTS,):
        return False
    for x, r, lo, hi in zip(q.tolist(), ref.tolist(), limits._q_lo, limits._q_hi):
        if not (lo <= x <= hi and abs(x - r) <= bound):
            return False
    if dq is not None:
        dq = np.asarray(dq, dtype=float)
        if dq.shape != (N_JOINTS,):
            return False
        for v, vmax in zip(dq.tolist(), limits._dq_max):
            if not abs(v) <= vmax:
                return False
    return True


def check_target(q_rad: np.ndarray, dq_rad_s: np.ndarray | None, reference_q_rad: np.ndarray,
                 limits: EffectiveLimits, resuming: bool) -> TargetDecision:
    """Accept or reject one joint target. Rejection, not clamping: a target the twin should never have
    sent says the twin is wrong, and moving toward a clamped version of it would still follow it.

    Args:
        q_rad: requested positions [rad], shape (7,).
        dq_rad_s: optional velocity feed-forward [rad/s], shape (7,).
        reference_q_rad: where the reference is when the target arrives (so a stream of small steps
            sent faster than the velocity limit cannot run away from it), or the held pose when
            ``resuming`` [rad].
        resuming: True when leaving HOLD: the tighter ``resume_tolerance_rad`` applies.
    """
    cfg = limits.config
    bound = cfg.resume_tolerance_rad if resuming else cfg.max_jump_rad
    q = np.asarray(q_rad, dtype=float)
    if _target_ok(q, dq_rad_s, reference_q_rad, limits, bound):  # fast path; details below on failure
        return TargetDecision(q, None if dq_rad_s is None else np.asarray(dq_rad_s, dtype=float), ())
    if q.shape != (N_JOINTS,) or not np.isfinite(q).all():
        return TargetDecision(None, None, (Violation(Reject.NON_FINITE, "q not 7 finite numbers"),))
    dq = None
    if dq_rad_s is not None:
        dq = np.asarray(dq_rad_s, dtype=float)
        if dq.shape != (N_JOINTS,) or not np.isfinite(dq).all():
            return TargetDecision(None, None, (Violation(Reject.NON_FINITE, "dq not 7 finite numbers"),))
    out: list[Violation] = []
    below, above = q < limits.q_lo_rad, q > limits.q_hi_rad
    if below.any() or above.any():
        j = int(np.argmax(below | above))
        lim = float(limits.q_lo_rad[j] if below[j] else limits.q_hi_rad[j])
        out.append(Violation(Reject.POSITION_LIMIT, f"joint {j + 1} at {q[j]:.4g} rad beyond {lim:.4f}", j,
                             float(q[j]), lim))
    if dq is not None and (np.abs(dq) > limits.dq_max_rad_s).any():
        j, v = _worst(dq, limits.dq_max_rad_s)
        out.append(Violation(Reject.VELOCITY_LIMIT, f"joint {j + 1} velocity {v:.4g} rad/s", j, v,
                             float(limits.dq_max_rad_s[j])))
    step = q - reference_q_rad
    if (np.abs(step) > bound).any():
        j, v = _worst(step, bound)
        reason = Reject.RESUME_TOO_FAR if resuming else Reject.JUMP
        out.append(Violation(reason, f"joint {j + 1} is {v:.4g} rad from the reference", j, v, bound))
    if out:
        return TargetDecision(None, None, tuple(out))
    return TargetDecision(q, dq, ())


def interpolate_reference(q_from_rad: np.ndarray, q_to_rad: np.ndarray, elapsed_s: float,
                          period_s: float, max_extrapolation_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The reference on a segment: linear from ``q_from_rad`` (at ``elapsed_s`` = 0) to ``q_to_rad`` (at
    ``period_s``); past the period it goes on at the segment's velocity for at most
    ``max_extrapolation_s`` more, then holds. Returns (position [rad], velocity [rad/s]), shape (7,)."""
    if period_s <= 0.0:
        return q_to_rad, np.zeros(N_JOINTS)
    velocity = (q_to_rad - q_from_rad) / period_s
    if elapsed_s >= period_s:
        over = elapsed_s - period_s
        if over >= max_extrapolation_s:
            return q_to_rad + velocity * max(max_extrapolation_s, 0.0), np.zeros(N_JOINTS)
        return q_to_rad + velocity * over, velocity
    return q_from_rad + velocity * max(elapsed_s, 0.0), velocity


def check_command(new: MotionState, previous: MotionState, dt_s: float, limits: EffectiveLimits,
                  rel_tol: float = 1e-9) -> tuple[Violation, ...]:
    """Final gate before a command reaches a backend, independent of how it was produced: finite,
    inside the position limits, and velocity, acceleration and jerk within their caps, where each is the
    finite difference of the one before over the tick (``tick_length(dt_s)``), so a command whose stated
    velocity or acceleration disagrees with its positions is refused too."""
    h = tick_length(dt_s, limits)
    up = 1.0 + rel_tol
    bad_pos = bad_vel = bad_acc = bad_jerk = bad_chain = False
    for q, v, a, q0, v0, a0, vmax, amax, jmax, lo, hi in zip(
            new.q_rad, new.dq_rad_s, new.ddq_rad_s2, previous.q_rad, previous.dq_rad_s, previous.ddq_rad_s2,
            limits._dq_max, limits._ddq_max, limits._dddq_max, limits._q_lo, limits._q_hi):
        # NaN fails every comparison below, so "not (x <= cap)" catches it too
        if not (lo - 1e-12 <= q <= hi + 1e-12):
            bad_pos = True
        if not abs(v) <= vmax * up:
            bad_vel = True
        if not abs(a) <= amax * up:
            bad_acc = True
        if not abs(a - a0) <= jmax * h * up + 1e-12:
            bad_jerk = True
        # the stated velocity and acceleration are those of the positions (up to float rounding)
        if not (abs(q - q0 - v * h) <= 1e-12 + 1e-15 * abs(q) and abs(v - v0 - a * h) <= 1e-12):
            bad_chain = True
    if not (math.isfinite(sum(new.q_rad)) and math.isfinite(sum(new.dq_rad_s)) and math.isfinite(sum(new.ddq_rad_s2))):
        return (Violation(Reject.NON_FINITE, "command not finite"),)
    out = []
    for bad, reason, what in ((bad_pos, Reject.POSITION_LIMIT, "outside the position limits"),
                              (bad_vel, Reject.VELOCITY_LIMIT, "velocity above its cap"),
                              (bad_acc, Reject.ACCELERATION_LIMIT, "acceleration above its cap"),
                              (bad_jerk, Reject.JERK_LIMIT, "jerk above its cap"),
                              (bad_chain, Reject.JUMP, "positions, velocity and acceleration disagree")):
        if bad:
            out.append(Violation(reason, f"command {what}"))
    return tuple(out)


def watchdog_expired(now_ns: int, last_valid_target_ns: int, config: SafetyConfig) -> bool:
    """True when no valid target arrived for longer than ``watchdog_timeout_s``."""
    return (now_ns - last_valid_target_ns) * 1e-9 > config.watchdog_timeout_s
