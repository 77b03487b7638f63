"""The pure safety layer: limits, target and timing checks, the motion limiter, the command gate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from robot_bridge import SafetyConfigError
from robot_bridge.motion import (
    MotionState, TrackerGains, at_rest, brake, stop_distance, stopping_pose, tick_length, track)
from robot_bridge.protocol import Reject
from robot_bridge.safety import (
    FRANKA_PANDA_LIMITS,
    JointLimits,
    SafetyConfig,
    check_command,
    check_target,
    check_timing,
    effective_limits,
    interpolate_reference,
    watchdog_expired,
)
from robot_bridge.testing import Record, motion_ratios

LIM = effective_limits()
HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
ZERO = np.zeros(7)


def test_effective_limits_scale_and_margin():
    assert np.allclose(LIM.dq_max_rad_s, 0.5 * np.array(FRANKA_PANDA_LIMITS.dq_max_rad_s))
    assert np.allclose(LIM.ddq_max_rad_s2, 0.5 * np.array(FRANKA_PANDA_LIMITS.ddq_max_rad_s2))
    assert np.allclose(LIM.dddq_max_rad_s3, 0.5 * np.array([7500, 3750, 5000, 6250, 7500, 10000, 10000]))
    assert np.allclose(LIM.q_hi_rad, np.array(FRANKA_PANDA_LIMITS.q_max_rad) - 0.05)
    with pytest.raises(ValueError):
        LIM.q_lo_rad[0] = 0.0  # read-only


@pytest.mark.parametrize("kwargs", [{"limit_factor": 0.0}, {"limit_factor": 1.5}, {"watchdog_timeout_s": 0.0},
                                    {"max_jump_rad": float("nan")}, {"position_margin_rad": -0.1},
                                    {"max_tick_dt_s": 0.05}])
def test_bad_safety_config_is_refused(kwargs):
    with pytest.raises(SafetyConfigError):
        SafetyConfig(**kwargs)


def test_bad_limits_are_refused():
    with pytest.raises(SafetyConfigError):
        JointLimits((0,) * 7, (0,) * 7, (1,) * 7, (1,) * 7, (1,) * 7)
    with pytest.raises(SafetyConfigError):
        JointLimits((0,) * 7, (1,) * 7, (1,) * 7, (1,) * 7, (0,) * 7)  # no jerk limit
    with pytest.raises(SafetyConfigError):
        effective_limits(FRANKA_PANDA_LIMITS, SafetyConfig(position_margin_rad=1.6))  # joint 4 spans 3.0 rad


def reasons(decision):
    return {v.reason for v in decision.violations}


def test_check_target_accepts_a_small_step():
    d = check_target(HOME + 0.01, None, HOME, LIM, resuming=False)
    assert d.accepted and not d.violations and np.allclose(d.q_rad, HOME + 0.01)


def test_check_target_rejects_each_kind():
    q = HOME.copy()
    q[3] = -0.05  # joint 4 upper limit is -0.0698 - margin
    assert reasons(check_target(q, None, q, LIM, False)) == {Reject.POSITION_LIMIT}
    assert reasons(check_target(np.full(7, 1e300), None, HOME, LIM, False)) >= {Reject.POSITION_LIMIT, Reject.JUMP}
    assert reasons(check_target(HOME, np.full(7, 2.0), HOME, LIM, False)) == {Reject.VELOCITY_LIMIT}
    assert reasons(check_target(HOME + 0.11, None, HOME, LIM, False)) == {Reject.JUMP}
    assert reasons(check_target(HOME + 0.06, None, HOME, LIM, True)) == {Reject.RESUME_TOO_FAR}
    assert reasons(check_target(HOME + np.nan, None, HOME, LIM, False)) == {Reject.NON_FINITE}
    assert not check_target(HOME + 0.06, None, HOME, LIM, True).accepted


def test_check_timing():
    cfg = SafetyConfig(max_message_age_s=0.05, max_future_s=0.01)
    off = 7_000_000_000  # receiver clock ahead by 7 s
    now = 10**12
    sent = now - off
    assert check_timing(5, 4, sent, now, off, cfg) == ()
    assert check_timing(4, 4, sent, now, off, cfg)[0].reason is Reject.DUPLICATE
    assert check_timing(3, 4, sent, now, off, cfg)[0].reason is Reject.REORDERED
    assert check_timing(5, 4, sent, now, None, cfg)[0].reason is Reject.CLOCK_UNSYNCED
    assert check_timing(5, 4, sent - 51_000_000, now, off, cfg)[0].reason is Reject.STALE
    assert check_timing(5, 4, sent - 49_000_000, now, off, cfg) == ()
    assert check_timing(5, 4, sent + 11_000_000, now, off, cfg)[0].reason is Reject.FUTURE
    # Without the offset correction the same message would look 7 s stale.
    assert check_timing(5, 4, sent, now, 0, cfg)[0].reason is Reject.STALE


def test_interpolation_and_watchdog():
    a, b = np.zeros(7), np.ones(7)
    q, v = interpolate_reference(a, b, 0.005, 0.01)
    assert np.allclose(q, 0.5) and np.allclose(v, 100.0)
    q, v = interpolate_reference(a, b, 0.0, 0.0)
    assert np.allclose(q, 1.0) and not v.any()
    # past the segment: on at its velocity for at most max_extrapolation_s, then held (velocity zero)
    q, v = interpolate_reference(a, b, 0.012, 0.01, max_extrapolation_s=0.005)
    assert np.allclose(q, 1.2) and np.allclose(v, 100.0)
    q, v = interpolate_reference(a, b, 0.5, 0.01, max_extrapolation_s=0.005)
    assert np.allclose(q, 1.5) and not v.any()
    q, v = interpolate_reference(a, b, 0.02, 0.01)
    assert np.allclose(q, 1.0) and not v.any()
    cfg = SafetyConfig(watchdog_timeout_s=0.1)
    assert not watchdog_expired(100_000_000, 0, cfg)
    assert watchdog_expired(100_000_001, 0, cfg)


def _brake_by_simulation(v: float, a: float, amax: float, jmax: float, dt: float = 1e-6) -> float:
    """The farthest + excursion of the time-optimal stop, integrated in fine steps (an oracle for
    `stop_distance`): jerk -jmax toward -amax, then +jmax as late as still stops at zero velocity."""
    x, best = 0.0, 0.0
    while True:
        ramp_up = a < 0 and v <= a * a / (2 * jmax)  # ramping a back to 0 now ends at v <= 0
        j = jmax if ramp_up else -jmax
        a_new = min(max(a + j * dt, -amax), 0.0 if ramp_up else amax)
        x += v * dt + 0.5 * a * dt * dt
        v += 0.5 * (a + a_new) * dt
        a = a_new
        best = max(best, x)
        if v <= 0 and a >= 0 or v < -1e-3:
            return best


@settings(max_examples=60, deadline=None)
@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.sampled_from(range(7)))
def test_stop_distance_matches_a_fine_simulation_of_the_optimal_stop(vf, af, j):
    amax, jmax, vmax = LIM.ddq_max_rad_s2[j], LIM.dddq_max_rad_s3[j], LIM.dq_max_rad_s[j]
    v, a = vf * vmax, af * amax
    assert stop_distance(v, a, amax, jmax) == pytest.approx(_brake_by_simulation(v, a, amax, jmax), abs=2e-5, rel=1e-3)
    assert stop_distance(0.0, 0.0, amax, jmax) == 0.0


def test_stopping_pose_brakes_at_the_acceleration_and_jerk_caps():
    s = MotionState(tuple(HOME), tuple(LIM.dq_max_rad_s), (0.0,) * 7)
    v, a, j = LIM.dq_max_rad_s, LIM.ddq_max_rad_s2, LIM.dddq_max_rad_s3
    expected = HOME + v * v / (2 * a) + v * a / (2 * j)  # triangle-free trapezoid from rest acceleration
    assert np.allclose(stopping_pose(s, LIM), np.clip(expected, LIM.q_lo_rad, LIM.q_hi_rad), atol=1e-9)


def _rollout(state: MotionState, refs, dts_ns, braking_from: int | None = None) -> list[Record]:
    recs, t = [Record(0, 0, np.array(state.q_rad), np.array(state.dq_rad_s), np.array(state.ddq_rad_s2), -1, -1)], 0
    for k, (ref, dt_ns) in enumerate(zip(refs, dts_ns)):
        t += dt_ns
        if braking_from is not None and k >= braking_from:
            new = brake(state, dt_ns * 1e-9, LIM)
        else:
            new, _ = track(state, ref[0], ref[1], dt_ns * 1e-9, LIM)
        assert check_command(new, state, dt_ns * 1e-9, LIM) == ()  # the final gate agrees at every tick
        state = new
        recs.append(Record(t, t, np.array(state.q_rad), np.array(state.dq_rad_s), np.array(state.ddq_rad_s2), -1, -1))
    return recs


def _assert_within_limits(recs) -> dict:
    m = motion_ratios(recs, LIM)
    assert m["violations"] == 0 and m["pos_over"] <= 1e-12, m
    assert max(m["v_excess"], m["a_excess"], m["j_excess"]) <= 0 and m["v_mismatch"] < 1e-6, m
    return m


def test_tracker_reaches_a_far_target_within_limits_and_settles():
    target = HOME + np.array([0.5, -0.3, 0.4, 0.3, -0.5, 0.5, 1.0])
    recs = _rollout(at_rest(HOME), [(target, ZERO)] * 3000, [1_000_000] * 3000)
    m = _assert_within_limits(recs)
    qs = np.stack([r.q for r in recs])
    assert np.allclose(qs[-1], target, atol=1e-6)
    assert np.max((qs - HOME) / (target - HOME)) <= 1 + 1e-9  # no overshoot
    # Fastest possible for joint 1 (0.5 rad at 1.0875 rad/s, 7.5 rad/s^2) is ~0.6 s: must not be faster.
    t_reach = np.argmax(np.abs(qs[:, 0] - target[0]) < 1e-3) * 0.001
    assert 0.55 < t_reach < 0.9
    assert m["v"] == pytest.approx(1.0) and m["a"] == pytest.approx(1.0) and m["j"] == pytest.approx(1.0)


def test_tracker_follows_a_ramp_with_a_constant_lag_it_can_stop_within():
    # The joint follows a moving reference at its speed, behind it by the distance it needs to stop
    # where the reference would stop if no further target came (its last point extrapolated for
    # max_extrapolation_s): steady, without ripple.
    speed = np.array([0.3, 0, 0, 0, 0, -0.2, 0])
    refs = [(HOME + speed * k * 1e-3, speed) for k in range(1, 1001)]
    recs = _rollout(at_rest(HOME), refs, [1_000_000] * 1000)
    _assert_within_limits(recs)
    f, kp, extra = TrackerGains().approach_fraction, TrackerGains().position_gain_1_s, LIM.config.max_extrapolation_s
    cap = f * np.asarray(LIM.ddq_max_rad_s2)
    # Distance needed to stop (the tracker's square-root law), less the extrapolation, less this tick's travel.
    expected_lag = speed ** 2 / (2 * cap) + 0.5 * cap / kp ** 2 * (speed != 0) - np.abs(speed) * (extra + 1e-3)
    lag = np.abs(refs[-1][0] - recs[-1].q)
    assert np.allclose(lag, expected_lag, atol=2e-5), (lag, expected_lag)
    assert lag[0] < 0.01 and np.allclose(recs[-1].dq, speed, atol=1e-6)
    lags = np.abs(np.stack([r[0] for r in refs[-300:]]) - np.stack([r.q for r in recs[-300:]]))
    assert np.ptp(lags, axis=0).max() < 1e-6  # no ripple


def test_a_ramp_that_stops_is_not_overshot():
    # The reference ramps, then stops where the server's extrapolation would leave it: the command comes to
    # rest there without passing it, so a short move of the twin never becomes a longer one of the robot.
    speed = np.array([0.3, 0, 0, 0, 0, -0.2, 0])
    extra = LIM.config.max_extrapolation_s
    ramp = [(HOME + speed * k * 1e-3, speed) for k in range(1, 301)]
    end = HOME + speed * (0.3 + extra)
    recs = _rollout(at_rest(HOME), ramp + [(end, ZERO)] * 700, [1_000_000] * 1000)
    _assert_within_limits(recs)
    qs = np.stack([r.q for r in recs])
    moving = speed != 0
    assert np.all(((qs - end) * np.sign(speed))[:, moving] <= 1e-9)  # never past the stop
    assert np.allclose(qs[-1], end, atol=1e-6)


def test_a_joint_driven_into_its_limit_at_full_speed_stops_at_it():
    refs = [(LIM.q_hi_rad + 1.0, ZERO)] * 4000  # beyond every upper limit: clipped, then braked for
    recs = _rollout(at_rest(HOME), refs, [1_000_000] * 4000)
    m = _assert_within_limits(recs)
    assert np.allclose(recs[-1].q, LIM.q_hi_rad, atol=1e-6) and m["v"] == pytest.approx(1.0)


def _viable_state(pos: np.ndarray, vel: np.ndarray, acc: np.ndarray) -> MotionState:
    """A state with velocity ``vel`` times the cap, acceleration up to ``acc`` times its cap (as far as
    the velocity cap can still be kept while it ramps down), and a position ``pos`` of the way through
    the range from which stopping inside the limits is possible at all (continuous time)."""
    q, v, a = [], [], []
    for p, fv, fa, lo, hi, vmax, amax, jmax in zip(pos, vel, acc, LIM.q_lo_rad, LIM.q_hi_rad, LIM.dq_max_rad_s,
                                                  LIM.ddq_max_rad_s2, LIM.dddq_max_rad_s3):
        vv = fv * vmax
        room = np.sqrt(2 * jmax * (vmax - abs(vv)))  # |a| toward the motion that still keeps the cap
        aa = fa * amax if fa * vv <= 0 else np.sign(fa) * min(abs(fa) * amax, room)
        x_lo, x_hi = lo + stop_distance(-vv, -aa, amax, jmax), hi - stop_distance(vv, aa, amax, jmax)
        q.append(x_lo + p * (x_hi - x_lo))
        v.append(vv)
        a.append(aa)
    return MotionState(tuple(q), tuple(v), tuple(a))


unit7 = st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).map(np.array)
signed7 = st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(np.array)


ticks_ns = st.lists(st.one_of(st.just(1_000), st.integers(100_000, 3_000_000)), min_size=1, max_size=10).filter(
    lambda ts: sum(ts) / len(ts) >= 500_000)


@settings(max_examples=60, deadline=None)
@given(unit7, signed7, signed7, st.lists(st.tuples(st.lists(st.floats(-4.0, 4.0), min_size=7, max_size=7),
                                                    signed7), min_size=1, max_size=8), ticks_ns, st.booleans())
def test_limiter_holds_every_limit_from_any_state_for_any_reference(pos, vel, acc, refs, dts, then_brake):
    """Start anywhere inside the limits at any velocity up to the cap (and acceleration up to its cap)
    from which stopping inside the limits is possible at all; references anywhere, beyond the limits
    included, with feed-forward velocities up to 3x the cap, changing every 0.25 s; ticks of 1 us and of
    0.1 to 3 ms (longer ones integrate 2 ms). For 2 s: position, velocity, acceleration and jerk within
    their limits at every tick, and braking (for the second second, when drawn) ends exactly at rest."""
    dts_ns, t = [], 0
    while t < 2_000_000_000:
        dts_ns.append(dts[len(dts_ns) % len(dts)])
        t += min(dts_ns[-1], 2_000_000)
    n = len(dts_ns)
    ref_seq, t = [], 0
    for dt in dts_ns:
        t += min(dt, 2_000_000)
        q_ref, w_ref = refs[(t // 250_000_000) % len(refs)]
        ref_seq.append((np.array(q_ref), np.array(w_ref) * 3.0 * LIM.dq_max_rad_s))
    recs = _rollout(_viable_state(pos, vel, acc), ref_seq, dts_ns,
                    braking_from=n // 2 if then_brake else None)
    _assert_within_limits(recs)
    if then_brake:
        assert not recs[-1].dq.any() and not recs[-1].ddq.any()  # exactly at rest


def test_brake_comes_exactly_to_rest_and_stays():
    s = MotionState(tuple(HOME), tuple(0.8 * LIM.dq_max_rad_s), tuple(0.5 * LIM.ddq_max_rad_s2))
    predicted = stopping_pose(s, LIM)
    recs = _rollout(s, [(HOME, ZERO)] * 1000, [1_000_000] * 1000, braking_from=0)
    _assert_within_limits(recs)
    q = np.stack([r.q for r in recs])
    assert not recs[-1].dq.any() and not recs[-1].ddq.any()
    assert np.ptp(q[-200:], axis=0).max() == 0.0  # still, to the last bit
    assert np.abs(q[-1] - predicted).max() < 0.01  # near where braking at the caps would stop


def test_command_gate_catches_each_fault():
    rest = at_rest(HOME)
    assert check_command(rest, rest, 0.001, LIM) == ()

    def gate(q=HOME, v=ZERO, a=ZERO, prev=rest, dt=0.001):
        return {x.reason for x in check_command(MotionState(tuple(q), tuple(v), tuple(a)), prev, dt, LIM)}

    assert gate(q=HOME + np.nan) == {Reject.NON_FINITE}
    bad = HOME.copy()
    bad[3] = 0.0
    assert Reject.POSITION_LIMIT in gate(q=bad, prev=at_rest(bad))
    v = np.full(7, 5.0)
    assert Reject.VELOCITY_LIMIT in gate(q=HOME + v * 1e-3, v=v, a=v / 1e-3)
    assert Reject.JUMP in gate(q=HOME + 0.01)  # positions moved with zero stated velocity
    # acceleration above its cap, reached within the jerk cap from a state already accelerating
    a_big = 1.2 * LIM.ddq_max_rad_s2
    prev = MotionState(tuple(HOME), tuple(ZERO), tuple(a_big))
    v1 = a_big * 1e-3
    assert gate(q=HOME + v1 * 1e-3, v=v1, a=a_big, prev=prev) == {Reject.ACCELERATION_LIMIT}
    # jerk above its cap: from rest to 90 % of the acceleration cap in one 1 ms tick
    a1 = 0.9 * LIM.ddq_max_rad_s2
    v1 = a1 * 1e-3
    assert gate(q=HOME + v1 * 1e-3, v=v1, a=a1) == {Reject.JERK_LIMIT}
    assert tick_length(0.5, LIM) == LIM.config.max_tick_dt_s and tick_length(0.0, LIM) == 1e-6
