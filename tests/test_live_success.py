"""The live loop's success rule (``twin.live.SuccessWindow``): the twin's coverage averaged over a window."""

from __future__ import annotations

import numpy as np
import pytest

from twin.live import DivergenceCheck, EpisodeRules, SuccessWindow


def test_the_mean_over_the_window_decides_not_every_step() -> None:
    window = SuccessWindow(0.97, steps=5)
    # a block at rest truly at ~0.97: the estimate jitters around it, one step in two below 0.97
    readings = [0.975, 0.965, 0.980, 0.968, 0.972]  # mean 0.972
    assert [window.update(c) for c in readings] == [False, False, False, False, True]


def test_a_window_just_below_the_threshold_or_not_yet_full_does_not_succeed() -> None:
    window = SuccessWindow(0.97, steps=5)
    assert not any(window.update(c) for c in [0.99, 0.99, 0.99, 0.99])  # 4 steps: the window is not full
    window = SuccessWindow(0.97, steps=5)
    assert not any(window.update(c) for c in [0.975, 0.965, 0.975, 0.965, 0.965, 0.975, 0.965])  # every window 0.969
    assert window.update(0.99)  # 0.965 0.965 0.975 0.965 0.99: mean 0.972


def test_a_non_finite_coverage_counts_as_nothing() -> None:
    window = SuccessWindow(0.97, steps=3)
    assert not any(window.update(c) for c in [1.0, float("nan"), 1.0])  # mean 0.667
    assert not window.update(1.0)  # nan 1 1: 0.667
    assert window.update(1.0)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        SuccessWindow(0.97, steps=0)
    with pytest.raises(ValueError):
        SuccessWindow(0.0, steps=5)
    with pytest.raises(ValueError):
        EpisodeRules(success_hold_steps=0)
    with pytest.raises(ValueError):
        EpisodeRules(success_margin=-0.01)


def test_a_step_the_images_have_not_confirmed_starts_the_window_again() -> None:
    # the pusher touches the twin's block or the loop waits after a push: the twin's coverage is its
    # own physics' prediction (here 0.99 while the real block stays at 0.90), and must not count
    window = SuccessWindow(0.97, steps=3)
    assert not window.update(0.99)
    assert not window.update(0.99)
    assert not window.update(0.99, confirmed=False)
    assert not window.update(0.99)
    assert not window.update(0.99)
    assert window.update(0.99)


def test_worlds_keep_windows_of_their_own() -> None:
    # a twin evaluation's W worlds: each world's window fills, empties and fires on its own steps
    window = SuccessWindow(0.97, steps=2, worlds=3)
    assert window.update(np.array([0.99, 0.99, 0.5])).tolist() == [False, False, False]
    assert window.update(np.array([0.99, 0.99, 0.99]), confirmed=np.array([True, False, True])).tolist() == \
        [True, False, False]
    assert window.update(np.array([0.99, 0.99, 0.99])).tolist() == [True, False, True]
    assert window.update(np.array([0.99, 0.99, float("nan")])).tolist() == [True, True, False]


def test_divergence_counts_steps_outside_per_world() -> None:
    from twin.config import TwinConfig

    rules, workspace = EpisodeRules(), TwinConfig().workspace
    check = DivergenceCheck(rules, workspace, worlds=3)
    far, centre = workspace.high[0] + rules.max_outside_m + 0.01, float(np.mean([workspace.low[0], workspace.high[0]]))
    poses = np.array([[far, 0.0, 0.0], [centre, 0.0, 0.0], [far, 0.0, 0.0]])
    finite = np.array([True, True, True])
    for _ in range(rules.outside_steps - 1):
        assert not check.step(poses, finite)[0].any()
    poses[2, 0] = centre  # world 2 came back in the last step: its count starts again
    assert check.step(poses, finite)[0].tolist() == [True, False, False]
    assert check.step(poses, np.array([True, False, True]))[0].tolist() == [True, True, False]
