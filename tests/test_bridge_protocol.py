"""Wire protocol and clock sync of the robot bridge: round trips and strict rejection."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from robot_bridge import protocol as P
from robot_bridge.clock import ClockSync
from robot_bridge.protocol import Reject

Q = (0.0, -0.78, 0.0, -2.35, 0.0, 1.57, 0.78)

MESSAGES = [
    P.Hello(1, 10, "twin", 60.0),
    P.Welcome(2, 20, 7, 1, 10, 15, Q, 0.1, 0.05, 0.05),
    P.JointTarget(3, 30, Q),
    P.JointTarget(4, 40, Q, tuple(0.1 * i for i in range(7)), 0.04),
    P.JointState(5, 50, 49, Q, (0.0,) * 7, (1.0,) * 7, int(P.Mode.FOLLOWING), int(P.ErrorFlag.REFLEX), 3, 45, 10, 2),
    P.JointState(6, 60, 59, Q, (0.0,) * 7, None, 0, 0, -1, -1, 0, 0),
    P.Heartbeat(7, 70, 2, 65),
    P.Heartbeat(8, 80, -1, -1),
    P.HeartbeatReply(9, 90, 7, 70, 85),
    P.Stop(10, 100, "operator"),
    P.Recover(12, 120),
    P.ErrorReply(11, 110, "wrong_version", "server speaks 1"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    data = P.encode(msg)
    assert len(data) <= P.MAX_MESSAGE_BYTES
    assert P.decode(data) == msg


def test_target_is_compact():
    assert len(P.encode(P.JointTarget(2**40, 2**62, Q, Q, 0.08))) < 200


def reason_of(data: bytes) -> Reject:
    with pytest.raises(P.ProtocolError) as info:
        P.decode(data)
    return info.value.reason


def raw(*items) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


def test_every_truncation_is_rejected():
    data = P.encode(P.JointTarget(3, 30, Q, Q, 0.04))
    for cut in range(len(data)):
        assert reason_of(data[:cut]) in (Reject.TRUNCATED, Reject.MALFORMED)
    assert reason_of(data[:-1]) is Reject.TRUNCATED
    assert reason_of(b"") is Reject.TRUNCATED


def test_specific_rejections():
    v = P.PROTOCOL_VERSION
    assert reason_of(P.encode(P.JointTarget(1, 1, Q), version=v + 1)) is Reject.WRONG_VERSION
    assert reason_of(P.encode(P.JointTarget(1, 1, Q), version=0)) is Reject.WRONG_VERSION
    assert reason_of(raw(v, 99, 1, 1)) is Reject.UNKNOWN_TYPE
    assert reason_of(raw(v, 3, 1, 1, list(Q[:6]), None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, 1, 1, list(Q) + [0.0], None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, 1, 1, [True] * 7, None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, 1, 1, ["0"] * 7, None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, -1, 1, list(Q), None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, 1.0, 1, list(Q), None, None)) is Reject.MALFORMED
    assert reason_of(raw(v, 3, 1, 1, list(Q), None)) is Reject.MALFORMED
    assert reason_of(raw("1", 3, 1, 1, list(Q), None, None)) is Reject.MALFORMED
    assert reason_of(msgpack.packb({"v": 1})) is Reject.MALFORMED
    assert reason_of(P.encode(P.JointTarget(1, 1, Q)) + b"\x00") is Reject.MALFORMED
    assert reason_of(b"\xc1" * 10) is Reject.MALFORMED
    assert reason_of(b"\x00" * (P.MAX_MESSAGE_BYTES + 1)) is Reject.OVERSIZED
    for bad in (math.nan, math.inf, -math.inf):
        q = list(Q)
        q[3] = bad
        assert reason_of(raw(v, 3, 1, 1, q, None, None)) is Reject.NON_FINITE
        assert reason_of(raw(v, 3, 1, 1, list(Q), q, None)) is Reject.NON_FINITE
        assert reason_of(raw(v, 3, 1, 1, list(Q), None, bad)) is Reject.NON_FINITE
    # Finite values outside any physically meaningful range are refused with their own reason; values
    # inside it decode (the robot's limits are the safety layer's job).
    assert reason_of(raw(v, 3, 1, 1, [1e300] * 7, None, None)) is Reject.OUT_OF_RANGE
    assert P.decode(raw(v, 3, 1, 1, [6.0] * 7, None, None)).q_rad[0] == 6.0


@pytest.mark.parametrize("rate", [1e-301, 0.0, -1.0, 0.999, 1000.001, 1e301])
def test_hello_rates_outside_1_to_1000_hz_are_out_of_range(rate):
    assert reason_of(raw(P.PROTOCOL_VERSION, int(P.MsgType.HELLO), 1, 1, "twin", rate)) is Reject.OUT_OF_RANGE


@pytest.mark.parametrize("field,msg", [
    ("dq_rad_s", P.JointTarget(1, 1, Q, (10.5,) * 7)),
    ("gripper_width_m", P.JointTarget(1, 1, Q, None, -0.01)),
    ("gripper_width_m", P.JointTarget(1, 1, Q, None, 0.3)),
    ("tau_nm", P.JointState(5, 50, 49, Q, (0.0,) * 7, (2000.0,) * 7, 2, 0, 3, 45, 10, 2)),
    ("watchdog_timeout_s", P.Welcome(2, 20, 7, 1, 10, 15, Q, 1e-9, 0.05, 0.05)),
    ("resume_tolerance_rad", P.Welcome(2, 20, 7, 1, 10, 15, Q, 0.1, 0.05, 3.0)),
])
def test_every_numeric_field_has_a_range(field, msg):
    assert P.RANGES[field]
    assert reason_of(P.encode(msg)) is Reject.OUT_OF_RANGE
    lo, hi = P.RANGES["rate_hz"]
    assert (lo, hi) == (1.0, 1000.0)
    assert P.decode(P.encode(P.Hello(1, 1, "twin", lo))).rate_hz == lo
    assert P.decode(P.encode(P.Hello(1, 1, "twin", hi))).rate_hz == hi


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_protocol_error(data):
    try:
        P.decode(data)
    except P.ProtocolError as exc:
        assert isinstance(exc.reason, Reject)


def test_clock_sync_recovers_offset_under_asymmetric_delay():
    offset = 5_000_000_000  # server clock runs 5 s ahead of the client
    cs = ClockSync(window=8)
    assert not cs.synced and cs.offset_ns == 0
    # (uplink, downlink) delays [ns]; the symmetric low-delay sample is exact.
    for k, (up, down) in enumerate([(900_000, 100_000), (60_000, 60_000), (2_000_000, 50_000), (300_000, 800_000)]):
        t1 = 1_000_000_000 * k
        t2 = t1 + up + offset
        t3 = t2 + 20_000
        t4 = t3 - offset + down
        assert cs.add(t1, t2, t3, t4) is not None
    assert cs.offset_ns == offset
    assert cs.uncertainty_ns == 60_000
    # Implausible samples are refused, not averaged in.
    assert cs.add(10, 5, 4, 20) is None
    assert cs.add(0, 0, 0, 10**12) is None
    assert cs.n_rejected == 2


def test_clock_sync_follows_drift_as_old_samples_leave_the_window():
    cs = ClockSync(window=4)
    for k in range(20):
        off = 1000 * k  # drifting offset
        t1 = 10**9 * k
        cs.add(t1, t1 + 50_000 + off, t1 + 60_000 + off, t1 + 110_000)
    assert abs(cs.offset_ns - 19_000) <= 3000
