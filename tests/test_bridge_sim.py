"""The simulated Franka follower: impedance dynamics, lag, limits, and real-time stepping."""

from __future__ import annotations

import time

import numpy as np

from robot_bridge.backends import make_backend
from robot_bridge.backends.base import BackendCommand
from robot_bridge.backends.sim import PANDA_HOME_Q_RAD, SimBackend, SimFranka, SimFrankaConfig
from robot_bridge.safety import FRANKA_PANDA_LIMITS

HOME = np.array(PANDA_HOME_Q_RAD)


def test_step_response_settles_with_lag_and_no_overshoot_to_speak_of():
    arm = SimFranka(SimFrankaConfig(command_lag_s=0.005))
    target = HOME + 0.1
    qs = []
    for _ in range(1000):
        arm.step(target)
        qs.append(arm.q_rad)
    qs = np.array(qs)
    assert np.allclose(qs[-1], target, atol=2e-3)
    assert np.all(np.abs(qs[:5] - HOME) < 1e-12)  # 5 ms pure delay: nothing moves yet
    assert np.abs(qs[5] - HOME).max() > 0
    overshoot = (qs - HOME).max(axis=0) - 0.1
    assert overshoot.max() < 0.01  # critically damped (friction adds a little)
    t63 = np.argmax(qs[:, 0] - HOME[0] > 0.063)  # rise time of tens of ms
    assert 10 < t63 < 100
    assert abs(arm.time_s - 1.0) < 1e-9


def test_model_respects_hardware_limits():
    arm = SimFranka()
    far = np.array(FRANKA_PANDA_LIMITS.q_max_rad) + 1.0
    for _ in range(3000):
        arm.step(far)
        assert np.all(np.abs(arm.dq_rad_s) <= np.array(FRANKA_PANDA_LIMITS.dq_max_rad_s) + 1e-12)
    assert np.all(arm.q_rad <= np.array(FRANKA_PANDA_LIMITS.q_max_rad) + 1e-12)
    assert np.all(np.abs(arm.tau_nm) <= np.array(SimFrankaConfig().tau_max_nm) + 1e-9)


def test_backend_advances_in_real_time():
    b = make_backend("sim")
    assert isinstance(b, SimBackend) and b.rate_hz == 1000.0
    b.connect(1.0)
    t0 = time.monotonic_ns()
    b.command(BackendCommand(t0, HOME + 0.05, np.zeros(7)))
    for k in range(1, 301):  # 300 ms of 1 kHz ticks
        b.idle(t0 + k * 1_000_000)
    assert abs(b.model.time_s - 0.3) < 0.002
    st = b.read_state()
    assert np.allclose(st.q_rad, HOME + 0.05, atol=5e-3) and st.error_flags == 0
    b.idle(t0 + 10_000_000_000)  # a 9.7 s stall integrates at most 50 ms
    assert 0.34 < b.model.time_s < 0.36
    b.disconnect()
