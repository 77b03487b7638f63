"""The robot-side safety layer: pure functions, no I/O, no sockets, no clocks (times are arguments).

Every backend sits behind these checks; the server applies them to every message and every tick and
no client setting can turn them off. Each function returns what may be sent together with a tuple of
`Violation` records: a clamp or a rejection is always a record (which the server counts and logs),
never a silent edit. See ``robot_bridge/design.md`` for why each check exists.

Joint vectors are numpy arrays of shape (7,) in Franka joint order: positions [rad], velocities
[rad/s], accelerations [rad/s^2].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._errors import SafetyConfigError
from .protocol import N_JOINTS, Reject

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
    "stopping_pose",
    "rate_limit_step",
    "check_command",
    "watchdog_expired",
]


@dataclass(frozen=True)
class JointLimits:
    """Hardware joint limits (unscaled). All tuples have shape (7,)."""

    q_min_rad: tuple[float, ...]
    q_max_rad: tuple[float, ...]
    dq_max_rad_s: tuple[float, ...]
    ddq_max_rad_s2: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("q_min_rad", "q_max_rad", "dq_max_rad_s", "ddq_max_rad_s2"):
            v = getattr(self, name)
            if len(v) != N_JOINTS or not all(math.isfinite(x) for x in v):
                raise SafetyConfigError(f"{name} must hold {N_JOINTS} finite numbers")
        if any(lo >= hi for lo, hi in zip(self.q_min_rad, self.q_max_rad)):
            raise SafetyConfigError("q_min_rad must be below q_max_rad for every joint")
        if any(x <= 0 for x in self.dq_max_rad_s + self.ddq_max_rad_s2):
            raise SafetyConfigError("velocity and acceleration limits must be positive")


FRANKA_PANDA_LIMITS = JointLimits(
    # Franka Panda joint-space limits as published by Franka Emika (robot and interface specifications).
    q_min_rad=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    q_max_rad=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    dq_max_rad_s=(2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100),
    ddq_max_rad_s2=(15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0),
)


@dataclass(frozen=True)
class SafetyConfig:
    """Settings of the safety layer. Limits are the hardware limits scaled by ``limit_factor``."""

    limit_factor: float = 0.5  # scale of velocity and acceleration limits, in (0, 1]
    position_margin_rad: float = 0.05  # kept clear of each hardware position limit [rad]
    max_jump_rad: float = 0.1  # largest per-joint change between consecutive accepted targets [rad]
    resume_tolerance_rad: float = 0.05  # a target leaving HOLD must be this close to the held pose [rad]
    max_message_age_s: float = 0.05  # older targets (after clock-offset correction) are stale [s]
    max_future_s: float = 0.01  # targets claiming to be from further in the future are refused [s]
    watchdog_timeout_s: float = 0.1  # no valid target for this long -> HOLD [s]
    max_tick_dt_s: float = 0.002  # largest time step one tick may integrate [s]
    max_interp_period_s: float = 0.1  # longest interval a target is spread over [s]
    #: A target that arrives late finds the reference going on at the last segment's velocity for at
    #: most this long (then it holds), so a late delivery is no stall-then-sprint in the motion [s].
    max_extrapolation_s: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.limit_factor <= 1.0:
            raise SafetyConfigError(f"limit_factor={self.limit_factor} must be in (0, 1]")
        for name in ("position_margin_rad", "max_jump_rad", "resume_tolerance_rad", "max_message_age_s",
                     "max_future_s", "watchdog_timeout_s", "max_tick_dt_s", "max_interp_period_s",
                     "max_extrapolation_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise SafetyConfigError(f"{name}={v} must be a finite non-negative number")
        if self.watchdog_timeout_s <= 0 or self.max_tick_dt_s <= 0 or self.max_jump_rad <= 0:
            raise SafetyConfigError("watchdog_timeout_s, max_tick_dt_s and max_jump_rad must be positive")


@dataclass(frozen=True)
class EffectiveLimits:
    """Limits as enforced: positions shrunk by the margin, rates scaled by the factor. Shape (7,) each."""

    q_lo_rad: np.ndarray
    q_hi_rad: np.ndarray
    dq_max_rad_s: np.ndarray
    ddq_max_rad_s2: np.ndarray
    config: SafetyConfig = field(repr=False)

    def __post_init__(self) -> None:
        # Plain-float copies for the per-tick scalar loops.
        object.__setattr__(self, "_q_lo", tuple(self.q_lo_rad.tolist()))
        object.__setattr__(self, "_q_hi", tuple(self.q_hi_rad.tolist()))
        object.__setattr__(self, "_dq_max", tuple(self.dq_max_rad_s.tolist()))
        object.__setattr__(self, "_ddq_max", tuple(self.ddq_max_rad_s2.tolist()))

    def contains(self, q_rad: np.ndarray) -> bool:
        return bool(np.all(q_rad >= self.q_lo_rad) and np.all(q_rad <= self.q_hi_rad))


def effective_limits(limits: JointLimits = FRANKA_PANDA_LIMITS, config: SafetyConfig = SafetyConfig()) -> EffectiveLimits:
    """Combine hardware limits and safety settings into the limits the server enforces."""
    lo = np.asarray(limits.q_min_rad, dtype=float) + config.position_margin_rad
    hi = np.asarray(limits.q_max_rad, dtype=float) - config.position_margin_rad
    if np.any(lo >= hi):
        raise SafetyConfigError("position_margin_rad leaves no room between the joint limits")
    for a in (lo, hi):
        a.setflags(write=False)
    dq = np.asarray(limits.dq_max_rad_s, dtype=float) * config.limit_factor
    ddq = np.asarray(limits.ddq_max_rad_s2, dtype=float) * config.limit_factor
    dq.setflags(write=False)
    ddq.setflags(write=False)
    return EffectiveLimits(lo, hi, dq, ddq, config)


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
        reference_q_rad: the previously accepted target, or the held pose when ``resuming`` [rad].
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
        out.append(Violation(reason, f"joint {j + 1} moves {v:.4g} rad in one message", j, v, bound))
    if out:
        return TargetDecision(None, None, tuple(out))
    return TargetDecision(q, dq, ())


def interpolate_reference(q_from_rad: np.ndarray, q_to_rad: np.ndarray, elapsed_s: float,
                          period_s: float, max_extrapolation_s: float = 0.0) -> np.ndarray:
    """Linear interpolation from ``q_from_rad`` (at ``elapsed_s`` = 0) to ``q_to_rad`` (at ``period_s``);
    past the period the reference goes on at the segment's velocity for at most ``max_extrapolation_s``
    more, then holds. Positions [rad], times [s]."""
    if period_s <= 0.0:
        return q_to_rad
    if elapsed_s >= period_s:
        over = min(elapsed_s - period_s, max(max_extrapolation_s, 0.0))
        return q_to_rad + (q_to_rad - q_from_rad) * (over / period_s) if over > 0.0 else q_to_rad
    return q_from_rad + (q_to_rad - q_from_rad) * (max(elapsed_s, 0.0) / period_s)


def stopping_pose(q_rad: np.ndarray, dq_rad_s: np.ndarray, limits: EffectiveLimits) -> np.ndarray:
    """Where each joint comes to rest braking at the acceleration limit, clipped to the position limits."""
    q = q_rad + np.sign(dq_rad_s) * dq_rad_s * dq_rad_s / (2.0 * limits.ddq_max_rad_s2)
    return np.clip(q, limits.q_lo_rad, limits.q_hi_rad)


def rate_limit_step(q_rad: np.ndarray, dq_rad_s: np.ndarray, ref_rad: np.ndarray, dt_s: float,
                    limits: EffectiveLimits) -> tuple[np.ndarray, np.ndarray, bool]:
    """One tick of a velocity- and acceleration-limited tracker from the last command toward ``ref_rad``.

    Per joint: the desired velocity is the one that reaches the reference this tick, capped by the
    velocity limit and by the speed from which the joint can still stop at the reference
    (sqrt(2 a |e|)); the change of velocity is capped by a dt; the position is clipped to the limits.
    (Scalar loop over 7 joints: on this hot path it is ~3x faster than numpy on 7-element arrays.)

    Returns:
        (q_next [rad], dq_next [rad/s], limited): ``limited`` is True when any cap was active.
    """
    dt = min(max(dt_s, 1e-6), limits.config.max_tick_dt_s)
    q_out = [0.0] * N_JOINTS
    v_out = [0.0] * N_JOINTS
    limited = False
    for i, (q, dq, r, vmax, a, lo, hi) in enumerate(zip(
            q_rad.tolist(), dq_rad_s.tolist(), ref_rad.tolist(), limits._dq_max, limits._ddq_max,
            limits._q_lo, limits._q_hi)):
        e = r - q
        m = abs(e)
        v_exact = m / dt
        speed = min(v_exact, vmax, math.sqrt(2.0 * a * m))
        want = math.copysign(speed, e) - dq
        a_dt = a * dt
        dv = a_dt if want > a_dt else (-a_dt if want < -a_dt else want)
        v = dq + dv
        # Velocity can only exceed its cap if the previous one did (never after a clean start).
        v = vmax if v > vmax else (-vmax if v < -vmax else v)
        x = q + v * dt
        if speed < v_exact or dv != want:
            limited = True
        if x < lo or x > hi:
            x = lo if x < lo else hi
            v = (x - q) / dt
            limited = True
        q_out[i] = x
        v_out[i] = v
    return np.array(q_out), np.array(v_out), limited


def check_command(q_rad: np.ndarray, dq_rad_s: np.ndarray, q_prev_rad: np.ndarray, dt_s: float,
                  limits: EffectiveLimits, tol: float = 1e-9) -> tuple[Violation, ...]:
    """Final gate before a command reaches a backend: finite, inside the position limits, velocity
    within its cap, and a position change consistent with that velocity over ``dt_s``."""
    dt = min(max(dt_s, 1e-6), limits.config.max_tick_dt_s)
    bad_pos = bad_vel = bad_step = False
    for q, dq, qp, vmax, lo, hi in zip(q_rad.tolist(), dq_rad_s.tolist(), q_prev_rad.tolist(), limits._dq_max,
                                       limits._q_lo, limits._q_hi):
        if not (math.isfinite(q) and math.isfinite(dq)):
            return (Violation(Reject.NON_FINITE, "command not finite"),)
        bad_pos |= q < lo - tol or q > hi + tol
        bad_vel |= abs(dq) > vmax + tol
        bad_step |= abs(q - qp) > vmax * dt + tol
    out = []
    if bad_pos:
        out.append(Violation(Reject.POSITION_LIMIT, "command outside position limits"))
    if bad_vel:
        out.append(Violation(Reject.VELOCITY_LIMIT, "command velocity above limit"))
    if bad_step:
        out.append(Violation(Reject.JUMP, "command step larger than velocity limit x dt"))
    return tuple(out)


def watchdog_expired(now_ns: int, last_valid_target_ns: int, config: SafetyConfig) -> bool:
    """True when no valid target arrived for longer than ``watchdog_timeout_s``."""
    return (now_ns - last_valid_target_ns) * 1e-9 > config.watchdog_timeout_s
