"""Teleoperators: dead zones, speed scaling, the keyboard through a real pseudo-terminal, the virtual
operator and the policy adapter."""

from __future__ import annotations

import os
import pty

import numpy as np
import pytest

from policies.teleop import (EpisodeEvent, KeyboardConfig, KeyboardTeleop, TargetLimits, TeleopError, TeleopPolicy,
                             VelocityIntegrator, VelocityMapping, apply_dead_zone, make_teleop, parse_keys)
from twin.env import Observation


def _obs(xy=(0.40, 0.0)) -> Observation:
    return Observation(pusher_xy=np.array([xy], dtype=float), block_pose=np.array([[0.55, 0.1, 0.3]]),
                       keypoints=np.zeros((1, 8, 2)), joint_pos=np.zeros((1, 7)), joint_vel=np.zeros((1, 7)))


def test_dead_zone_is_radial_and_continuous():
    np.testing.assert_array_equal(apply_dead_zone([0.05, 0.05], 0.1), [0.0, 0.0])
    np.testing.assert_array_equal(apply_dead_zone([0.1, 0.0], 0.1), [0.0, 0.0])
    np.testing.assert_allclose(apply_dead_zone([0.1001, 0.0], 0.1), [0.0001 / 0.9, 0.0], atol=1e-9)  # no jump
    np.testing.assert_allclose(apply_dead_zone([0.55, 0.0], 0.1), [0.5, 0.0])
    np.testing.assert_allclose(apply_dead_zone([1.0, 0.0], 0.1), [1.0, 0.0])
    v = apply_dead_zone([0.6, 0.8], 0.2)  # direction kept, magnitude (1 - 0.2) / 0.8 = 1
    np.testing.assert_allclose(v, [0.6, 0.8])
    np.testing.assert_allclose(np.linalg.norm(apply_dead_zone([3.0, 0.0], 0.1)), 1.0)  # clipped deflection
    with pytest.raises(ValueError):
        apply_dead_zone([0, 0], 1.0)


def test_integrator_speed_scaling_and_limits():
    m = VelocityMapping(max_speed_m_s=0.2, dead_zone=0.0, speed_scale=1.0, speed_scale_step=2.0, max_speed_scale=2.0,
                        min_speed_scale=0.25)
    it = VelocityIntegrator(m, TargetLimits((0.36, 0.72), (-0.3, 0.3)))
    np.testing.assert_allclose(it.step([1.0, 0.0], 0.1, np.array([0.4, 0.0])), [0.42, 0.0])
    assert it.faster() == 2.0 and it.faster() == 2.0  # capped
    np.testing.assert_allclose(it.step([0.0, -1.0], 0.1, np.zeros(2)), [0.42, -0.04])
    assert it.slower() == 1.0 and it.slower() == 0.5 and it.slower() == 0.25 and it.slower() == 0.25
    np.testing.assert_allclose(it.step([-1.0, 0.0], 0.1, np.zeros(2)), [0.415, -0.04])
    for _ in range(200):
        it.step([-1.0, 1.0], 0.1, np.zeros(2))
    np.testing.assert_allclose(it.target, [0.36, 0.3])  # stays on the table
    with pytest.raises(ValueError):
        VelocityMapping(dead_zone=1.2)


def test_parse_keys_escape_sequences():
    assert parse_keys("\x1b[A\x1b[B\x1b[C\x1b[D") == ["up", "down", "right", "left"]
    assert parse_keys("wAsd+=-") == ["w", "a", "s", "d", "+", "+", "-"]
    assert parse_keys("n\rr\x7fq\x1b") == ["n", "enter", "r", "backspace", "q", "esc"]
    assert parse_keys("\x1b[1;5Ax") == ["x"]  # unknown sequences (ctrl-up) dropped whole


def test_keyboard_through_a_real_pty():
    master, slave = pty.openpty()
    kb = KeyboardTeleop(KeyboardConfig(mapping=VelocityMapping(max_speed_m_s=0.1, dead_zone=0.0), press_s=0.1),
                        TargetLimits(), fd=slave)
    try:
        kb.connect()
        assert kb.is_connected
        np.testing.assert_allclose(kb.get_action(_obs()), [0.40, 0.0])  # starts at the pusher
        os.write(master, b"\x1b[A\x1b[A")  # two presses of up: +x by 2 * 0.1 m/s * 0.1 s
        np.testing.assert_allclose(kb.get_action(_obs()), [0.42, 0.0], atol=1e-12)
        os.write(master, b"a+a")  # left (+y), faster x1.25, left again
        np.testing.assert_allclose(kb.get_action(_obs()), [0.42, 0.01 + 0.0125], atol=1e-12)
        assert kb.events() == []
        os.write(master, b"r")
        kb.get_action(_obs())
        os.write(master, b"n\x1b")
        kb.get_action(_obs())
        assert kb.events() == [EpisodeEvent.RERECORD, EpisodeEvent.NEXT, EpisodeEvent.STOP]
        assert kb.events() == []
        kb.reset()  # a new episode restarts at the pusher
        np.testing.assert_allclose(kb.get_action(_obs((0.5, 0.1))), [0.5, 0.1])
    finally:
        kb.disconnect()
        os.close(master)
        os.close(slave)


def test_keyboard_needs_a_terminal(tmp_path):
    with open(tmp_path / "f", "w") as f:
        with pytest.raises(TeleopError, match="needs a terminal"):
            KeyboardTeleop(fd=f.fileno()).connect()


def test_teleop_policy_adapter_and_virtual_operator():
    from twin.config import TwinConfig
    from twin.env import PushTEnv

    twin = TwinConfig()
    virtual = make_teleop("virtual", twin)
    seen = []
    policy = TeleopPolicy(virtual, on_act=seen.append)
    env = PushTEnv(twin)
    obs, _ = env.reset(seed=3)
    with pytest.raises(TeleopError, match="not connected"):
        policy.act(obs)
    from policies.expert import PushTExpert

    expert = PushTExpert(twin)
    expert.reset()
    with virtual:
        policy.reset()
        a = policy.act(obs)
    assert a.shape == (1, 2) and seen[-1] is obs
    np.testing.assert_allclose(a, expert.act(obs))  # the virtual operator is the scripted expert
    # a measured block reaches the virtual operator's planner through the policy
    from dataclasses import replace

    measured = replace(twin, block=replace(twin.block, stem_length_m=0.152))
    policy.set_twin_config(measured)
    assert virtual.expert.twin_config.block == measured.block
    assert virtual.expert._planner.config.block == measured.block
    with pytest.raises(ValueError, match="unknown teleoperator"):
        make_teleop("joystick9000", twin)
