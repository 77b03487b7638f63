"""Fuzz: a protocol-aware hostile peer (robot_bridge.testing.run_fuzz) against a running server over real
loopback sockets. The server stays up, the final gate never fires, and at the backend boundary every
command holds the position limits and the velocity, acceleration and jerk caps (finite differences of
the commanded positions, up to float rounding). 10,000 messages by default; 100,000 with ``-m slow``."""

from __future__ import annotations

import numpy as np
import pytest

from robot_bridge.protocol import Reject
from robot_bridge.testing import FuzzConfig, RecordingBackend, assert_commands_within_limits, run_fuzz, running_server


def _fuzz(messages: int, seed: int, walk_every: int):
    backend = RecordingBackend()
    with running_server(backend) as server:
        report = run_fuzz(server, backend, FuzzConfig(messages=messages, seed=seed, limit_walk_every=walk_every))
        assert server.alive
        st = server.stats()
        assert_commands_within_limits(backend.records(), server.limits)
        return report, st, backend, server


def _check(report, st, backend) -> None:
    assert report.server_deaths == 0 and report.gate_refusals == 0 and report.limit_violations == 0, report
    tol = 1e-6  # float rounding of the differences at the shortest ticks (the exact bound is asserted above)
    assert report.max_velocity_ratio <= 1 + tol and report.max_accel_ratio <= 1 + tol, report
    assert report.max_jerk_ratio <= 1 + tol and report.max_position_excess_rad <= 1e-9, report
    # Broad coverage: many reasons seen, plausible targets accepted, the caps reached, limits braked for.
    seen = {r for r, n in st.rejections.items() if n > 0}
    assert {Reject.MALFORMED, Reject.TRUNCATED, Reject.OVERSIZED, Reject.WRONG_VERSION, Reject.NON_FINITE,
            Reject.OUT_OF_RANGE, Reject.POSITION_LIMIT, Reject.JUMP, Reject.STALE, Reject.FUTURE, Reject.REORDERED,
            Reject.NOT_OWNER, Reject.MULTIPART, Reject.STOPPED} <= seen, seen
    assert report.accepted > 1000 and report.sessions > 10, report
    # walked into a limit at the velocity cap: the arm came to rest within 5 mrad of it, never past it
    assert report.limit_walks >= 1 and -0.005 < report.max_position_excess_rad <= 1e-9, report
    assert report.max_velocity_ratio > 0.95 and report.max_accel_ratio > 0.95 and report.max_jerk_ratio > 0.95, report
    q = np.stack([r.q for r in backend.records()])
    assert np.ptp(q, axis=0).max() > 0.5  # the arm really moved (the checks above are not vacuous)


@pytest.mark.timeout(240)
def test_fuzz_10k_messages_never_exceed_a_limit():
    report, st, backend, _ = _fuzz(10_000, seed=1234, walk_every=60)
    _check(report, st, backend)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_100k_messages_walk_every_joint_into_both_limits():
    report, st, backend, server = _fuzz(100_000, seed=4321, walk_every=25)
    _check(report, st, backend)
    assert report.limit_walks >= 14
    q = np.stack([r.q for r in backend.records()])
    lim = server.limits
    # every joint reached (within 2 mrad) both of its position limits
    assert np.all(q.max(axis=0) > lim.q_hi_rad - 2e-3) and np.all(q.min(axis=0) < lim.q_lo_rad + 2e-3)
