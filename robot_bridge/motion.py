"""The motion limiter: one tick of jerk-limited motion that holds every joint limit (pure, no I/O).

Every command the server sends to a backend is produced here, whatever the mode (following a
reference, holding, braking on stop, after silence or an error). Per joint and per tick of length ``h``
(the time since the previous command, at most ``max_tick_dt_s``) the command is the chain::

    ddq1 = ddq + jerk * h        dq1 = dq + ddq1 * h        q1 = q + dq1 * h

so the finite differences of the commanded positions over the tick *are* the velocity, acceleration
and jerk the limiter bounds: what a robot measures from the command stream is what is limited.

Guarantees, per joint, for any reference (anywhere, beyond the limits, jumping, reversing), any tick
lengths, from any *viable* state (one from which braking can stop the joint inside the position
limits without exceeding the velocity cap; every state at rest inside the limits is viable):

- |jerk| <= J, |ddq| <= A, |dq| <= V, lo <= q <= hi, at every tick;
- the next state is viable again, so the guarantees hold for ever.

How: a nominal tracker proposes an acceleration (a cascade: position error -> velocity with the
reference's velocity fed forward -> acceleration, each shaped by a square-root law so that the
joint can stop at the reference, and the velocity at its target, within the caps). The acceleration
is then bounded, in this order, by the jerk cap, the acceleration cap, the velocity cap *including
the velocity still to come while the acceleration ramps down at the jerk cap* (closed form), and
position viability: the braking distance at the acceleration and jerk caps (closed form, continuous
time, plus a margin of one tick's travel for the discretisation) must end inside the limits; when the
proposal fails, the largest acceptable acceleration is found by bisection (the test is monotonic in
it). Braking (`brake`) is the same step with a proposal that brings the velocity to zero, and lands
exactly at rest (zero velocity and acceleration) once the caps allow.

Vectors are shape (7,) in Franka joint order: positions [rad], velocities [rad/s], accelerations
[rad/s^2]; times [s].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .limits import N_JOINTS, EffectiveLimits

__all__ = ["TrackerGains", "MotionState", "at_rest", "stop_distance", "stopping_pose", "tick_length", "track", "brake"]

_BISECTIONS = 14  # position viability: the acceptable acceleration to 1/16384 of its search interval


@dataclass(frozen=True)
class TrackerGains:
    """Tuning of the nominal tracker (the caps are `EffectiveLimits`, never these)."""

    position_gain_1_s: float = 40.0  # error [rad] -> velocity correction [rad/s] near the reference
    velocity_gain_1_s: float = 250.0  # velocity error -> acceleration; at most 1 / max_tick_dt_s
    approach_fraction: float = 0.8  # share of the acceleration and jerk caps the tracker plans its stops with

    def __post_init__(self) -> None:
        if not (self.position_gain_1_s > 0 and self.velocity_gain_1_s > 0 and 0 < self.approach_fraction <= 1):
            raise ValueError("tracker gains must be positive and approach_fraction in (0, 1]")


@dataclass(frozen=True, slots=True)
class MotionState:
    """The last command of every joint: positions [rad], velocities [rad/s], accelerations [rad/s^2]."""

    q_rad: tuple[float, ...]
    dq_rad_s: tuple[float, ...]
    ddq_rad_s2: tuple[float, ...]

    @property
    def at_rest(self) -> bool:
        return not any(self.dq_rad_s) and not any(self.ddq_rad_s2)


def at_rest(q_rad) -> MotionState:
    """A state at rest at ``q_rad`` [rad]."""
    q = tuple(float(x) for x in np.asarray(q_rad, dtype=float).reshape(N_JOINTS))
    return MotionState(q, (0.0,) * N_JOINTS, (0.0,) * N_JOINTS)


def stop_distance(v: float, a: float, amax: float, jmax: float) -> float:
    """How far in the + direction a joint still goes before it is at rest, braking as hard as the caps
    allow (jerk ``jmax`` [rad/s^3], acceleration ``amax`` [rad/s^2]), from velocity ``v`` [rad/s] and
    acceleration ``a`` [rad/s^2] (continuous time; never negative). Mirror the signs for the - side."""
    if a <= 0.0:
        if v <= 0.0:
            return 0.0
        if v * 2.0 * jmax <= a * a:  # ramping the acceleration up to zero at once stops it on the way
            t = (-a - math.sqrt(a * a - 2.0 * jmax * v)) / jmax
            return v * t + 0.5 * a * t * t + jmax * t * t * t / 6.0
    elif v * 2.0 * jmax + a * a <= 0.0:  # moving away, and ramping a down never turns it back
        return 0.0
    ap2 = jmax * v + 0.5 * a * a  # peak deceleration squared of a profile without a constant phase
    if ap2 <= amax * amax:
        ap, t2 = math.sqrt(ap2), 0.0
    else:
        ap = amax
        t2 = (v + (a * a - amax * amax) / (2.0 * jmax) - amax * amax / (2.0 * jmax)) / amax
    t1 = (a + ap) / jmax  # acceleration from a down to -ap
    d = v * t1 + 0.5 * a * t1 * t1 - jmax * t1 * t1 * t1 / 6.0
    v1 = v + a * t1 - 0.5 * jmax * t1 * t1
    d += v1 * t2 - 0.5 * ap * t2 * t2  # constant -ap
    v2 = v1 - ap * t2
    t3 = ap / jmax  # -ap back up to zero, arriving at rest
    d += v2 * t3 - 0.5 * ap * t3 * t3 + jmax * t3 * t3 * t3 / 6.0
    return d if d > 0.0 else 0.0


def stopping_pose(state: MotionState, limits: EffectiveLimits) -> np.ndarray:
    """Where each joint comes to rest braking at the acceleration and jerk caps [rad], shape (7,)."""
    out = []
    for q, v, a, amax, jmax in zip(state.q_rad, state.dq_rad_s, state.ddq_rad_s2, limits._ddq_max, limits._dddq_max):
        out.append(q + stop_distance(v, a, amax, jmax) - stop_distance(-v, -a, amax, jmax))
    return np.clip(np.array(out), limits.q_lo_rad, limits.q_hi_rad)


def _sqrt_law(err: float, gain: float, cap: float) -> float:
    """Linear (``gain * err``) near zero, ``sqrt(2 cap |err|)``-shaped beyond, continuous: the rate at
    which an error can still be closed without overshoot when its second derivative is capped."""
    lin = cap / (gain * gain)
    if err > lin:
        return math.sqrt(2.0 * cap * (err - 0.5 * lin))
    if err < -lin:
        return -math.sqrt(2.0 * cap * (-err - 0.5 * lin))
    return gain * err


def _accel_for_velocity_room(room: float, h: float, jmax: float) -> float:
    """The largest next acceleration a1 with ``a1 h + max(a1, 0)^2 / (2 jmax) <= room``: the velocity
    after this tick, plus what it still gains while a1 ramps down to zero at the jerk cap, stays
    within ``room`` [rad/s] of the current velocity."""
    if room <= 0.0:
        return room / h
    return jmax * (math.sqrt(h * h + 2.0 * room / jmax) - h)


def _overshoot(x: float, v: float, a: float, lo: float, hi: float, amax: float, jmax: float, pad: float) -> int:
    """+1 when braking from (x, v, a) would end past ``hi``, -1 past ``lo``, 0 inside; the braking
    distance is padded by one tick of length ``pad`` [s] at the current velocity and acceleration (the
    commands are discrete: `stop_distance` is for continuous time)."""
    m = (abs(v) + abs(a) * pad) * pad
    if x + stop_distance(v, a, amax, jmax) + m > hi:
        return 1
    if x - stop_distance(-v, -a, amax, jmax) - m < lo:
        return -1
    return 0


def _joint_step(x: float, v: float, a: float, a_want: float, h: float, lo: float, hi: float, vmax: float,
                amax: float, jmax: float, reach: float, pad: float, land: bool) -> tuple[float, float, float, bool]:
    """One joint, one tick: the wanted acceleration bounded by every cap. Returns (x1, v1, a1, braked):
    ``braked`` is True when position viability (not the rate caps) changed the acceleration."""
    jh = jmax * h
    a_lo = a - jh if a - jh > -amax else -amax
    a_hi = a + jh if a + jh < amax else amax
    # the velocity cap, with what the velocity still gains while the acceleration ramps down (only
    # computed when the cheap test says it may bind)
    if v + a_hi * h + (a_hi * a_hi / (2.0 * jmax) if a_hi > 0.0 else 0.0) > vmax:
        a_vhi = _accel_for_velocity_room(vmax - v, h, jmax)
        if a_vhi < a_hi:
            a_hi = a_vhi if a_vhi > a_lo else a_lo  # never past the jerk cap: from a viable state it holds
    if v + a_lo * h - (a_lo * a_lo / (2.0 * jmax) if a_lo < 0.0 else 0.0) < -vmax:
        a_vlo = -_accel_for_velocity_room(vmax + v, h, jmax)
        if a_vlo > a_lo:
            a_lo = a_vlo if a_vlo < a_hi else a_hi
    if land:
        stop = -v / h  # lands at zero velocity this tick, with an acceleration the next tick can zero
        if a_lo <= stop <= a_hi and abs(stop) <= jh:
            return x, 0.0, stop, False  # exactly: v + stop * h is zero up to rounding
    a1 = a_hi if a_want > a_hi else (a_lo if a_want < a_lo else a_want)
    v1 = v + a1 * h
    x1 = x + v1 * h
    if lo + reach <= x1 <= hi - reach:  # far from both position limits: nothing to check
        return x1, v1, a1, False
    side = _overshoot(x1, v1, a1, lo, hi, amax, jmax, pad)
    if side == 0:
        return x1, v1, a1, False
    # The largest (side +1) or smallest (side -1) acceleration whose braking still ends inside.
    good, bad = (a_lo, a1) if side > 0 else (a_hi, a1)
    v_g = v + good * h
    if _overshoot(x + v_g * h, v_g, good, lo, hi, amax, jmax, pad) != side:
        for _ in range(_BISECTIONS):
            mid = 0.5 * (good + bad)
            v_m = v + mid * h
            if _overshoot(x + v_m * h, v_m, mid, lo, hi, amax, jmax, pad) == side:
                bad = mid
            else:
                good = mid
    v1 = v + good * h
    return x + v1 * h, v1, good, True


def tick_length(dt_s: float, limits: EffectiveLimits) -> float:
    """The time step one tick integrates [s]: the time since the previous command, clamped to
    (1e-6, ``max_tick_dt_s``] (after a stall a command moves by at most one such step)."""
    hmax = limits.config.max_tick_dt_s
    return hmax if dt_s > hmax else (dt_s if dt_s > 1e-6 else 1e-6)


def _reach(limits: EffectiveLimits) -> tuple[float, ...]:
    """Per joint, a bound on braking distance plus margin over all viable states [rad] (cached)."""
    r = limits.__dict__.get("_motion_reach")
    if r is None:
        h = limits.config.max_tick_dt_s
        r = tuple(stop_distance(v, a, a, j) + (v + a * h) * h + 1e-9
                  for v, a, j in zip(limits._dq_max, limits._ddq_max, limits._dddq_max))
        object.__setattr__(limits, "_motion_reach", r)
    return r


def track(state: MotionState, ref_q_rad, ref_dq_rad_s, dt_s: float, limits: EffectiveLimits,
          gains: TrackerGains = TrackerGains()) -> tuple[MotionState, bool]:
    """One tick toward a reference.

    Args:
        state: the previous command.
        ref_q_rad: where the joints should be [rad], shape (7,); clipped into the limits first.
        ref_dq_rad_s: the reference's velocity [rad/s], shape (7,) (fed forward; zero where the
            position was clipped, capped at the velocity limit).
        dt_s: time since the previous command [s]; clamped to (1e-6, ``max_tick_dt_s``].

    A moving reference is followed at its velocity, behind it by the distance the joint needs to stop
    where the reference would stop if no further target came (``max_extrapolation_s`` past it): about
    ``v^2 / (2 approach_fraction A)`` less that extrapolation (6 mrad at 0.3 rad/s on joint 1 at the
    default limits), so a reference that stops is never overshot.

    Returns:
        (next command, braked): ``braked`` is True when a position limit changed what the tracker
        wanted (braking early for a limit; the rate caps shape every large move and are not counted).
    """
    h = tick_length(dt_s, limits)
    pad = limits.config.max_tick_dt_s
    kp, kv, f = gains.position_gain_1_s, gains.velocity_gain_1_s, gains.approach_fraction
    qs, vs, as_ = [], [], []
    limited = False
    extra = limits.config.max_extrapolation_s
    for x, v, a, r, w, lo, hi, vmax, amax, jmax, reach in zip(
            state.q_rad, state.dq_rad_s, state.ddq_rad_s2, np.asarray(ref_q_rad, dtype=float).tolist(),
            np.asarray(ref_dq_rad_s, dtype=float).tolist(), limits._q_lo, limits._q_hi, limits._dq_max,
            limits._ddq_max, limits._dddq_max, _reach(limits)):
        if not (lo < r < hi):
            r = lo if not r > lo else hi  # NaN goes to lo, but references are checked finite upstream
            w = 0.0
        w = vmax if w > vmax else (-vmax if w < -vmax else w)
        v_want = w + _sqrt_law(r - w * h - x, kp, f * amax)  # error at the tick's start: lands on r at its end
        # The reference may stop at any moment (a target that does not come): it then goes on for at most
        # max_extrapolation_s. The joint never heads for that point faster than it can still stop there,
        # or the velocity fed forward would carry the command past a reference that stops (by its
        # braking distance, then back), turning a short push of the twin into a longer one of the robot;
        # in steady motion this is a constant lag of about w^2 / (1.6 A), no ripple.
        stop = r + w * extra
        v_stop = _sqrt_law((lo if not stop > lo else (hi if stop > hi else stop)) - x, kp, f * amax)
        if v_want > 0.0:
            v_want = min(v_want, v_stop if v_stop > 0.0 else 0.0)
        elif v_want < 0.0:
            v_want = max(v_want, v_stop if v_stop < 0.0 else 0.0)
        v_want = vmax if v_want > vmax else (-vmax if v_want < -vmax else v_want)
        a_want = _sqrt_law(v_want - v, kv, f * jmax)
        x1, v1, a1, braked = _joint_step(x, v, a, a_want, h, lo, hi, vmax, amax, jmax, reach, pad, False)
        limited |= braked
        qs.append(x1)
        vs.append(v1)
        as_.append(a1)
    return MotionState(tuple(qs), tuple(vs), tuple(as_)), limited


def brake(state: MotionState, dt_s: float, limits: EffectiveLimits,
          gains: TrackerGains = TrackerGains()) -> MotionState:
    """One tick of stopping: velocity to zero as fast as the caps allow, then exactly at rest."""
    if state.at_rest:
        return state
    h = tick_length(dt_s, limits)
    pad = limits.config.max_tick_dt_s
    kv = gains.velocity_gain_1_s
    qs, vs, as_ = [], [], []
    for x, v, a, lo, hi, vmax, amax, jmax, reach in zip(
            state.q_rad, state.dq_rad_s, state.ddq_rad_s2, limits._q_lo, limits._q_hi, limits._dq_max,
            limits._ddq_max, limits._dddq_max, _reach(limits)):
        if v == 0.0 and a == 0.0:
            qs.append(x)
            vs.append(0.0)
            as_.append(0.0)
            continue
        x1, v1, a1, _ = _joint_step(x, v, a, _sqrt_law(-v, kv, jmax), h, lo, hi, vmax, amax, jmax, reach, pad, True)
        qs.append(x1)
        vs.append(v1)
        as_.append(a1)
    return MotionState(tuple(qs), tuple(vs), tuple(as_))
