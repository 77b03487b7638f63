"""Gamepad (SDL events through pygame's real event queue, dummy video driver) and SpaceMouse (HID
reports as the device sends them) mappings, driven by synthetic device events."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from policies.teleop import (EpisodeEvent, GamepadConfig, GamepadTeleop, SpaceMouseConfig, SpaceMouseTeleop,
                             TargetLimits, TeleopError, VelocityMapping, make_teleop, parse_report)
from policies.teleop._spacemouse import SpaceMouseState
from twin.env import Observation


def _obs(xy=(0.40, 0.0)) -> Observation:
    return Observation(pusher_xy=np.array([xy], dtype=float), block_pose=np.zeros((1, 3)),
                       keypoints=np.zeros((1, 8, 2)), joint_pos=np.zeros((1, 7)), joint_vel=np.zeros((1, 7)))


@pytest.fixture
def gamepad():
    pygame = pytest.importorskip("pygame")
    pad = GamepadTeleop(GamepadConfig(mapping=VelocityMapping(max_speed_m_s=0.1, dead_zone=0.2), period_s=0.1,
                                      require_device=False), TargetLimits())
    pad.connect()
    pygame.event.clear()
    yield pad, pygame
    pad.disconnect()


def test_gamepad_stick_dead_zone_speed_and_buttons(gamepad):
    pad, pg = gamepad
    post = pg.event.post
    post(pg.event.Event(pg.JOYAXISMOTION, joy=0, instance_id=0, axis=1, value=-0.15))  # inside the dead zone
    np.testing.assert_allclose(pad.get_action(_obs()), [0.40, 0.0])
    assert not pad.giving_input  # a resting stick does not take over from a policy
    post(pg.event.Event(pg.JOYAXISMOTION, joy=0, instance_id=0, axis=1, value=-1.0))  # full forward
    np.testing.assert_allclose(pad.get_action(_obs()), [0.41, 0.0])  # 0.1 m/s for 0.1 s
    assert pad.giving_input
    post(pg.event.Event(pg.JOYAXISMOTION, joy=0, instance_id=0, axis=1, value=0.0))
    post(pg.event.Event(pg.JOYAXISMOTION, joy=0, instance_id=0, axis=0, value=-0.6))  # left, half after dead zone
    np.testing.assert_allclose(pad.get_action(_obs()), [0.41, 0.005])
    post(pg.event.Event(pg.JOYBUTTONDOWN, joy=0, instance_id=0, button=5))  # faster x1.25
    np.testing.assert_allclose(pad.get_action(_obs()), [0.41, 0.005 + 0.00625])
    for b in (1, 0, 6):
        post(pg.event.Event(pg.JOYBUTTONDOWN, joy=0, instance_id=0, button=b))
    pad.get_action(_obs())
    assert pad.events() == [EpisodeEvent.RERECORD, EpisodeEvent.NEXT, EpisodeEvent.STOP]
    post(pg.event.Event(pg.JOYDEVICEREMOVED, instance_id=0))  # unplugged: stop, no drift
    before = pad.get_action(_obs())
    np.testing.assert_allclose(pad.get_action(_obs()), before)
    assert pad.events() == [EpisodeEvent.STOP]


def test_gamepad_requires_a_device_by_default():
    pytest.importorskip("pygame")
    pad = GamepadTeleop(GamepadConfig(index=7))
    with pytest.raises(TeleopError, match="no gamepad"):
        pad.connect()
    pad.disconnect()


def _report(rid: int, *values: int) -> bytes:
    return bytes([rid]) + struct.pack(f"<{len(values)}h", *values)


def test_spacemouse_report_parsing():
    st = SpaceMouseState()
    assert parse_report(_report(1, 100, -200, 50), st) == []
    np.testing.assert_array_equal(st.translation, [100, -200, 50])
    parse_report(_report(2, 1, 2, 3), st)
    np.testing.assert_array_equal(st.rotation, [1, 2, 3])
    parse_report(_report(1, 4, 5, 6, 7, 8, 9), st)  # newer devices: all six axes in report 1
    np.testing.assert_array_equal(st.translation, [4, 5, 6])
    np.testing.assert_array_equal(st.rotation, [7, 8, 9])
    assert parse_report(bytes([3, 0b01, 0]), st) == [0]
    assert parse_report(bytes([3, 0b11, 0]), st) == [1]  # only newly pressed buttons
    assert parse_report(bytes([3, 0, 0]), st) == []


def test_spacemouse_mapping():
    sm = SpaceMouseTeleop(SpaceMouseConfig(mapping=VelocityMapping(max_speed_m_s=0.1, dead_zone=0.1),
                                           full_scale=350.0, period_s=0.1), TargetLimits())
    sm.feed(_report(1, 10, -20, 0))  # a light touch, inside the dead zone
    np.testing.assert_allclose(sm.get_action(_obs()), [0.40, 0.0])
    sm.feed(_report(1, 0, -350, 0))  # puck pushed fully forward (-y on the device) = +x
    np.testing.assert_allclose(sm.get_action(_obs()), [0.41, 0.0])
    sm.feed(_report(1, 350, 0, 0))  # puck right (+x on the device) = -y
    np.testing.assert_allclose(sm.get_action(_obs()), [0.41, -0.01])
    sm.feed(bytes([3, 1, 0]))
    sm.feed(bytes([3, 0, 0]))
    sm.feed(bytes([3, 2, 0]))
    assert sm.events() == [EpisodeEvent.NEXT, EpisodeEvent.RERECORD]


def test_make_teleop_uses_the_control_period():
    from twin.config import TwinConfig

    twin = TwinConfig(control_hz=20.0)
    assert make_teleop("gamepad", twin).config.period_s == pytest.approx(0.05)
    sm = make_teleop("spacemouse", twin)
    assert sm.config.period_s == pytest.approx(0.05) and sm.integrator.limits.x_range_m == twin.workspace.x_range_m
