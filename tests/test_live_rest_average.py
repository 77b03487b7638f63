"""The live loop's averaging of a resting block's measurements (``twin.live.RestAverage``)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.perception.tracker import RestAverage

TRUE = np.array([0.5, 0.1, 0.3])


def noisy(rng: np.random.Generator, n: int, sigma_m: float = 0.002) -> np.ndarray:
    return TRUE + np.c_[rng.normal(0, sigma_m, (n, 2)), rng.normal(0, np.deg2rad(0.5), n)]


def test_averaging_a_resting_block_cuts_the_noise() -> None:
    avg = RestAverage(0.35, 0.006, np.deg2rad(3.0))
    measured = noisy(np.random.default_rng(0), 200)
    out = []
    for m in measured:
        pose = avg.update(m, np.zeros(3))
        out.append(m if pose is None else pose)
    out = np.array(out[20:])
    raw_err = np.linalg.norm(measured[20:, :2] - TRUE[:2], axis=1)
    avg_err = np.linalg.norm(out[:, :2] - TRUE[:2], axis=1)
    assert np.sqrt(np.mean(avg_err**2)) < 0.6 * np.sqrt(np.mean(raw_err**2))
    assert abs(np.mean(out[:, 0]) - TRUE[0]) < 0.0005  # no bias


def test_a_moved_block_or_a_push_starts_afresh() -> None:
    avg = RestAverage(0.35, 0.006, np.deg2rad(3.0))
    assert avg.update(TRUE, np.zeros(3)) is None  # the first measurement is taken as it is
    near = avg.update(TRUE + [0.002, 0.0, 0.0], np.zeros(3))
    assert near is not None and near[0] == pytest.approx(TRUE[0] + 0.35 * 0.002)
    nudged = TRUE + [0.03, 0.0, 0.0]
    assert avg.update(nudged, np.zeros(3)) is None  # beyond the window: something moved it
    assert avg.update(nudged + [0.001, 0, 0], np.array([0.01, 0.0, 0.0])) is None  # pushed in between
    assert avg.update(nudged, np.array([0.01, 0.0, 0.0]), plain=False) is None  # a saturated measurement
    assert avg.update(nudged, np.array([0.01, 0.0, 0.0])) is None  # ... so no average to continue
    turned = avg.update(nudged + [0.0, 0.0, np.deg2rad(2.0)], np.array([0.01, 0.0, 0.0]))
    assert turned is not None and turned[2] == pytest.approx(nudged[2] + 0.35 * np.deg2rad(2.0))


def test_bad_fraction_is_rejected() -> None:
    with pytest.raises(ValueError):
        RestAverage(0.0, 0.006, 0.05)
