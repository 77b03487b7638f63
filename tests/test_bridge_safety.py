"""The pure safety module: limits, target checks, timing checks, the rate limiter, the command gate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from robot_bridge import SafetyConfigError
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
    rate_limit_step,
    stopping_pose,
    watchdog_expired,
)

LIM = effective_limits()
HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def test_effective_limits_scale_and_margin():
    assert np.allclose(LIM.dq_max_rad_s, 0.5 * np.array(FRANKA_PANDA_LIMITS.dq_max_rad_s))
    assert np.allclose(LIM.ddq_max_rad_s2, 0.5 * np.array(FRANKA_PANDA_LIMITS.ddq_max_rad_s2))
    assert np.allclose(LIM.q_hi_rad, np.array(FRANKA_PANDA_LIMITS.q_max_rad) - 0.05)
    with pytest.raises(ValueError):
        LIM.q_lo_rad[0] = 0.0  # read-only


@pytest.mark.parametrize("kwargs", [{"limit_factor": 0.0}, {"limit_factor": 1.5}, {"watchdog_timeout_s": 0.0},
                                    {"max_jump_rad": float("nan")}, {"position_margin_rad": -0.1}])
def test_bad_safety_config_is_refused(kwargs):
    with pytest.raises(SafetyConfigError):
        SafetyConfig(**kwargs)


def test_bad_limits_are_refused():
    with pytest.raises(SafetyConfigError):
        JointLimits((0,) * 7, (0,) * 7, (1,) * 7, (1,) * 7)
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
    assert np.allclose(interpolate_reference(a, b, 0.005, 0.01), 0.5)
    assert np.allclose(interpolate_reference(a, b, 0.02, 0.01), 1.0)
    assert np.allclose(interpolate_reference(a, b, 0.0, 0.0), 1.0)
    # past the segment: on at its velocity for at most max_extrapolation_s, then held
    assert np.allclose(interpolate_reference(a, b, 0.012, 0.01, max_extrapolation_s=0.005), 1.2)
    assert np.allclose(interpolate_reference(a, b, 0.5, 0.01, max_extrapolation_s=0.005), 1.5)
    assert np.allclose(interpolate_reference(b, b, 0.5, 0.01, max_extrapolation_s=0.005), 1.0)
    cfg = SafetyConfig(watchdog_timeout_s=0.1)
    assert not watchdog_expired(100_000_000, 0, cfg)
    assert watchdog_expired(100_000_001, 0, cfg)


def test_stopping_pose_brakes_at_the_acceleration_limit():
    dq = LIM.dq_max_rad_s.copy()
    q_stop = stopping_pose(HOME, dq, LIM)
    expected = HOME + dq**2 / (2 * LIM.ddq_max_rad_s2)
    assert np.allclose(q_stop, np.clip(expected, LIM.q_lo_rad, LIM.q_hi_rad))


def simulate(refs, dt, q0=HOME):
    q, dq = q0.copy(), np.zeros(7)
    out = []
    for ref in refs:
        qn, dqn, _ = rate_limit_step(q, dq, ref, dt, LIM)
        assert check_command(qn, dqn, q, dt, LIM) == ()
        assert np.all(np.abs(dqn - dq) <= LIM.ddq_max_rad_s2 * min(dt, 0.002) + 1e-9)
        q, dq = qn, dqn
        out.append(q)
    return np.array(out)


def test_rate_limiter_reaches_a_far_target_within_limits_and_settles():
    target = HOME + np.array([0.5, -0.3, 0.4, 0.3, -0.5, 0.5, 1.0])
    qs = simulate([target] * 3000, 0.001)
    assert np.allclose(qs[-1], target, atol=1e-4)
    # Fastest possible for joint 1 (0.5 rad at 1.0875 rad/s, 7.5 rad/s^2) is ~0.6 s: must not be faster.
    t_reach = np.argmax(np.abs(qs[:, 0] - target[0]) < 1e-3) * 0.001
    assert 0.55 < t_reach < 0.9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-10, 10), min_size=7, max_size=7), min_size=1, max_size=40),
       st.floats(1e-5, 0.05))
def test_rate_limiter_never_exceeds_limits_for_any_reference(refs, dt):
    # References anywhere (even outside the limits, which check_target would refuse) still give
    # commands within every limit.
    simulate([np.array(r) for r in refs for _ in range(5)], dt)


def test_command_gate_catches_each_fault():
    q = HOME
    assert check_command(q, np.zeros(7), q, 0.001, LIM) == ()
    assert check_command(q + np.nan, np.zeros(7), q, 0.001, LIM)[0].reason is Reject.NON_FINITE
    bad = q.copy()
    bad[3] = 0.0
    assert Reject.POSITION_LIMIT in {v.reason for v in check_command(bad, np.zeros(7), bad, 0.001, LIM)}
    assert Reject.VELOCITY_LIMIT in {v.reason for v in check_command(q, np.full(7, 5.0), q, 0.001, LIM)}
    assert Reject.JUMP in {v.reason for v in check_command(q + 0.01, np.zeros(7), q, 0.001, LIM)}
