"""Twin-vs-truth errors taken while a live run goes (``twin.live.TruthAlignment``): a long run's
records are all aligned although the truth channel keeps only a bounded history."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import numpy as np

from twin.live import TruthAlignment

MS = 1_000_000  # ns


def truth_at(t_ns: float) -> np.ndarray:
    """The truth block moves 1 mm/s along x and 1 mrad/s in yaw."""
    s = t_ns / 1e9
    return np.array([0.5 + 1e-3 * s, 0.0, 1e-3 * s])


def test_every_record_is_aligned_though_the_history_keeps_only_the_newest_messages() -> None:
    history: deque = deque(maxlen=20)  # 1 s at 20 Hz, far shorter than the 30 s run
    records: list = []
    alignment = TruthAlignment()
    offset = np.array([0.002, 0.0, 0.01])  # the twin is 2 mm and 10 mrad off the truth
    for step in range(300):  # 10 Hz control steps; the truth comes at 20 Hz
        now = step * 100 * MS
        for t in (now - 50 * MS, now):
            history.append({"t_ns": t, "block_pose": truth_at(t).tolist()})
        shown = now + 25 * MS  # meant for a moment after the newest truth: must wait for it
        records.append(SimpleNamespace(shown_at_ns=shown, twin_block=truth_at(shown) + offset))
        alignment.update(records, history)
    assert len(alignment.index) == 299  # the last record's truth never came
    assert alignment.index == list(range(299))
    np.testing.assert_allclose(alignment.pos_m, 0.002, atol=1e-9)
    np.testing.assert_allclose(alignment.yaw_rad, 0.01, atol=1e-9)


def test_records_without_a_time_are_skipped_and_gaps_in_the_truth_are_not_bridged() -> None:
    history = deque({"t_ns": t * MS, "block_pose": truth_at(t * MS).tolist()} for t in (0, 50, 100, 600, 650))
    records = [SimpleNamespace(shown_at_ns=0, twin_block=np.zeros(3)),  # before the twin was shown
               SimpleNamespace(shown_at_ns=75 * MS, twin_block=truth_at(75 * MS)),
               SimpleNamespace(shown_at_ns=300 * MS, twin_block=truth_at(300 * MS)),  # inside a 500 ms gap
               SimpleNamespace(shown_at_ns=625 * MS, twin_block=truth_at(625 * MS) + [0.003, 0.004, 0.0])]
    alignment = TruthAlignment()
    alignment.update(records, history)
    assert alignment.index == [1, 3]
    np.testing.assert_allclose(alignment.pos_m, [0.0, 0.005], atol=1e-9)
