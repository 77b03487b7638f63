"""The live loop's wait after a push until the twin's block agrees with the images (``twin.perception.tracker.PushSettle``)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.perception.tracker import BlockTrackerConfig, PushSettle

TWIN = np.array([0.54, 0.0, 0.785])


def settle() -> PushSettle:
    return PushSettle(0.0015, np.deg2rad(1.0), max_frames=8)


def test_no_wait_before_a_push_and_after_cancel() -> None:
    gate = settle()
    assert not gate.waiting
    gate.update(TWIN + [0.01, 0, 0], TWIN)  # a disagreement with no push behind it does not start a wait
    assert not gate.waiting
    gate.push_ended()
    assert gate.waiting
    gate.cancel()
    assert not gate.waiting


def test_waits_until_the_measurement_agrees_with_the_twin() -> None:
    gate = settle()
    gate.push_ended()
    # the real block came to rest 3 degrees past the twin's prediction; the correction closes the gap
    for yaw_off_deg in (3.0, 2.0, 1.4):
        gate.update(TWIN + [0.0, 0.0, np.deg2rad(yaw_off_deg)], TWIN)
        assert gate.waiting, yaw_off_deg
    gate.update(TWIN + [0.001, 0.0, np.deg2rad(0.5)], TWIN)  # within 1.5 mm and 1 degree
    assert not gate.waiting
    # position beyond the tolerance alone keeps the wait
    gate.push_ended()
    gate.update(TWIN + [0.002, 0.0, 0.0], TWIN)
    assert gate.waiting


def test_the_wait_is_bounded_even_without_measurements() -> None:
    gate = settle()
    gate.push_ended()
    for k in range(8):
        assert gate.waiting, k
        gate.update(None if k % 2 else np.full(3, np.nan), TWIN)  # occluded block, skipped frame sets
    assert not gate.waiting
    off = PushSettle(0.0015, np.deg2rad(1.0), max_frames=0)
    off.push_ended()
    assert not off.waiting


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        PushSettle(0.0, 0.01, 8)
    with pytest.raises(ValueError):
        PushSettle(0.001, 0.01, -1)
    with pytest.raises(ValueError):
        BlockTrackerConfig(settle_after_push_max_frames=-1)
    with pytest.raises(ValueError):
        BlockTrackerConfig(settle_after_push_deg=0.0)
