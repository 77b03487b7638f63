"""Shared control (``realsim collect --policy``): a policy drives, the operator takes over by moving a real
teleoperator (the keyboard through a pseudo-terminal, the browser page's HTTP endpoint) and hands back
by letting go."""

from __future__ import annotations

import json
import os
import pty
import time
import urllib.request

import numpy as np
import pytest

from policies.base import Policy
from policies.teleop import (BrowserConfig, BrowserTeleop, KeyboardConfig, KeyboardTeleop, TakeoverPolicy,
                             TargetLimits, TeleopError, VelocityMapping)
from twin.env import Observation

POLICY_TARGET = (0.60, 0.10)


def _obs(xy=(0.45, 0.05)) -> Observation:
    return Observation(pusher_xy=np.array([xy], dtype=float), block_pose=np.zeros((1, 3)),
                       keypoints=np.zeros((1, 8, 2)), joint_pos=np.zeros((1, 7)), joint_vel=np.zeros((1, 7)))


class _FixedTarget(Policy):
    """A policy that always targets POLICY_TARGET and counts its calls."""

    def __init__(self) -> None:
        self.resets = 0
        self.acts = 0

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        self.resets += 1

    def act(self, obs: Observation, active: np.ndarray | None = None) -> np.ndarray:
        self.acts += 1
        return np.array([POLICY_TARGET])


def test_keyboard_takes_over_and_hands_back():
    master, slave = pty.openpty()
    kb = KeyboardTeleop(KeyboardConfig(mapping=VelocityMapping(max_speed_m_s=0.1, dead_zone=0.0), press_s=0.1),
                        TargetLimits(), fd=slave)
    kb.input_hold_s = 0.3
    inner = _FixedTarget()
    seen: list = []
    shared = TakeoverPolicy(inner, kb, on_act=seen.append)
    try:
        kb.connect()
        shared.reset()
        assert inner.resets == 1
        np.testing.assert_allclose(shared.act(_obs()), [POLICY_TARGET])
        assert not shared.by_operator and inner.acts == 1
        os.write(master, b"\x1b[A")  # up: +x by 0.1 m/s * 0.1 s, from the pusher (not from a stale target)
        np.testing.assert_allclose(shared.act(_obs()), [[0.46, 0.05]], atol=1e-12)
        assert shared.by_operator and shared.takeovers == 1 and inner.acts == 1
        # no key for a moment (within the hold): the operator still drives, the target stays
        np.testing.assert_allclose(shared.act(_obs((0.455, 0.05))), [[0.46, 0.05]], atol=1e-12)
        assert shared.operator_steps == 2 and inner.acts == 1
        time.sleep(0.35)  # let go: the policy drives again, from a fresh start
        np.testing.assert_allclose(shared.act(_obs((0.46, 0.05))), [POLICY_TARGET])
        assert not shared.by_operator and inner.resets == 2 and inner.acts == 2
        os.write(master, b"a")  # left: +y, starting again at the pusher
        np.testing.assert_allclose(shared.act(_obs((0.50, 0.02))), [[0.50, 0.03]], atol=1e-12)
        assert shared.takeovers == 2 and len(seen) == 5
        shared.reset()  # a new episode: the counts restart
        assert (shared.takeovers, shared.operator_steps, shared.by_operator) == (0, 0, False)
    finally:
        kb.disconnect()
        os.close(master)
        os.close(slave)
    with pytest.raises(TeleopError, match="not connected"):
        shared.act(_obs())


def test_browser_target_takes_over_and_no_operator_leaves_the_policy_alone():
    teleop = BrowserTeleop(BrowserConfig(port=0), TargetLimits())
    teleop.input_hold_s = 0.3
    inner = _FixedTarget()
    shared = TakeoverPolicy(inner, teleop)
    teleop.connect()
    try:
        shared.reset()
        np.testing.assert_allclose(shared.act(_obs()), [POLICY_TARGET])
        req = urllib.request.Request(teleop.url + "target", data=json.dumps({"x": 0.5, "y": -0.1}).encode(), method="POST")
        urllib.request.urlopen(req, timeout=2).read()
        assert teleop.giving_input
        np.testing.assert_allclose(shared.act(_obs()), [[0.5, -0.1]])
        assert shared.by_operator
        time.sleep(0.35)
        np.testing.assert_allclose(shared.act(_obs()), [POLICY_TARGET])
        assert not shared.by_operator and inner.resets == 2
    finally:
        teleop.disconnect()
    alone = TakeoverPolicy(_FixedTarget(), None)
    alone.reset()
    np.testing.assert_allclose(alone.act(_obs()), [POLICY_TARGET])
    assert not alone.by_operator and alone.takeovers == 0
