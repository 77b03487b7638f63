"""PushT geometry and scoring."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from twin.pusht import (
    GoalConfig,
    TShape,
    block_keypoints,
    coverage,
    planar_pose_error,
    pusher_path_touches,
    t_outline,
)


def test_t_shape_dimensions_and_centre_of_mass() -> None:
    s = TShape()
    poly = shapely.Polygon(t_outline(s))
    assert poly.area == pytest.approx(0.20 * 0.05 + 0.05 * 0.15)
    centroid = poly.centroid
    assert centroid.x == pytest.approx(0.0, abs=1e-12)
    assert centroid.y == pytest.approx(0.0, abs=1e-12)  # the block frame sits at the centre of mass
    xs, ys = t_outline(s).T
    assert xs.max() - xs.min() == pytest.approx(0.20)
    assert ys.max() - ys.min() == pytest.approx(0.20)


def test_coverage_is_one_at_goal_and_zero_far_away() -> None:
    s, g = TShape(), GoalConfig()
    poses = np.array([g.pose, g.pose + [0.5, 0.0, 0.0], g.pose + [0.0, 0.0, 2 * np.pi]])
    cov = coverage(s, poses, g.pose)
    assert cov[0] == pytest.approx(1.0)
    assert cov[1] == pytest.approx(0.0)
    assert cov[2] == pytest.approx(1.0)


def test_coverage_falls_with_offset_and_success_threshold() -> None:
    s, g = TShape(), GoalConfig()
    shifts = np.array([0.0, 0.002, 0.005, 0.02, 0.05])
    cov = coverage(s, g.pose + np.c_[shifts, np.zeros(5), np.zeros(5)], g.pose)
    assert np.all(np.diff(cov) < 0)
    assert cov[1] >= g.success_coverage > cov[3]
    # a flipped T covers only part of the goal
    flipped = coverage(s, (g.pose + [0, 0, np.pi])[None], g.pose)[0]
    assert 0.1 < flipped < 0.7


def test_keypoints_follow_the_pose() -> None:
    s = TShape()
    kp = block_keypoints(s, np.array([[1.0, 2.0, np.pi / 2]]))[0]
    local = t_outline(s)
    np.testing.assert_allclose(kp, np.c_[-local[:, 1], local[:, 0]] + [1.0, 2.0], atol=1e-12)


def test_pose_error_wraps_yaw() -> None:
    pos, yaw = planar_pose_error(np.array([[0.0, 0.0, np.pi - 0.1]]), np.array([0.03, 0.04, -np.pi + 0.1]))
    assert pos[0] == pytest.approx(0.05)
    assert yaw[0] == pytest.approx(0.2)


def test_invalid_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="bar_length_m"):
        TShape(bar_length_m=0.0)


def test_pusher_path_touches_the_block_within_reach() -> None:
    shape = TShape()
    pose = np.array([0.5, 0.0, 0.0])  # bar along x, its top edge at y = bar top
    top = float(t_outline(shape)[:, 1].max())
    above = lambda gap: np.array([0.5, top + gap])
    assert pusher_path_touches(shape, pose, above(0.015), above(0.015), reach_m=0.02)
    assert not pusher_path_touches(shape, pose, above(0.025), above(0.025), reach_m=0.02)
    # a path that sweeps past the block touches it although both ends are clear
    left, right = np.array([0.3, top + 0.01]), np.array([0.7, top + 0.01])
    assert not pusher_path_touches(shape, pose, left - [0.1, 0], left, reach_m=0.015)
    assert pusher_path_touches(shape, pose, left, right, reach_m=0.015)
    # the block's pose counts: the same point is clear of a block moved 5 cm down
    assert not pusher_path_touches(shape, pose - [0.0, 0.05, 0.0], above(0.015), above(0.015), reach_m=0.02)
