"""Fuzz: 10,000 random and mutated messages against a running server. The server stays up, and no
command outside the limits ever reaches the backend (checked at the backend boundary)."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest

from conftest_bridge import RawClient, RecordingBackend, assert_commands_within_limits, running_server, wait_until
from robot_bridge import protocol as P
from robot_bridge.protocol import Reject

N_MESSAGES = 10_000
pytestmark = pytest.mark.timeout(120)


def _mutate_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # flip bytes
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(len(b)))]
    elif kind == 2:  # append junk
        b += rng.bytes(int(rng.integers(1, 20)))
    elif kind == 3:  # insert junk
        i = int(rng.integers(len(b)))
        b[i:i] = rng.bytes(int(rng.integers(1, 8)))
    else:  # repeat to oversize
        b = b * int(rng.integers(10, 30))
    return bytes(b)


def _random_obj(rng: np.random.Generator, depth: int = 0):
    k = rng.integers(8 if depth < 3 else 5)
    if k == 0:
        return int(rng.integers(-2**40, 2**40))
    if k == 1:
        return float(rng.choice([np.nan, np.inf, -np.inf, 1e308, -0.0, rng.normal()]))
    if k == 2:
        return None
    if k == 3:
        return "x" * int(rng.integers(0, 40))
    if k == 4:
        return bool(rng.integers(2))
    if k == 5:
        return {"k": _random_obj(rng, depth + 1)}
    return [_random_obj(rng, depth + 1) for _ in range(int(rng.integers(0, 9)))]


def test_fuzz_never_commands_outside_limits():
    rng = np.random.default_rng(1234)
    backend = RecordingBackend()
    with running_server(backend) as server:
        lim = server.limits
        client = RawClient(server.endpoint)
        intruder = RawClient(server.endpoint)
        try:
            q_walk = np.array(client.handshake().q_rad)
            v = P.PROTOCOL_VERSION
            sent = 0
            t_start = time.monotonic()
            while sent < N_MESSAGES:
                for _ in range(25):
                    kind = rng.integers(100)
                    if kind < 35:  # plausible target: a small random-walk step (mostly accepted)
                        q_walk = np.clip(q_walk + rng.normal(0, 0.01, 7), lim.q_lo_rad + 0.01, lim.q_hi_rad - 0.01)
                        client.target(q_walk, dq=rng.normal(0, 0.2, 7) if rng.random() < 0.3 else None)
                    elif kind < 50:  # semantically bad target: valid encoding, bad values
                        q = q_walk.copy()
                        j = int(rng.integers(7))
                        q[j] = rng.choice([q[j] + rng.choice([-1, 1]) * rng.uniform(0.1, 3.0), 1e300, -1e300,
                                           lim.q_hi_rad[j] + 0.01, lim.q_lo_rad[j] - 0.01, 5e-324, np.nan, np.inf])
                        dq = np.full(7, rng.uniform(-10, 10)) if rng.random() < 0.3 else None
                        client.target(q, dq=dq)
                    elif kind < 58:  # timing and sequence faults
                        f = rng.integers(4)
                        if f == 0:
                            client.target(q_walk, seq=max(client.seq - int(rng.integers(0, 5)), 0))
                        elif f == 1:
                            client.target(q_walk, t_send_ns=client.now() - int(rng.integers(60, 5000)) * 1_000_000)
                        elif f == 2:
                            client.target(q_walk, t_send_ns=client.now() + int(rng.integers(20, 5000)) * 1_000_000)
                        else:
                            client.seq += int(rng.integers(1, 1000))  # gap: allowed
                            client.target(q_walk)
                    elif kind < 80:  # byte-level mutation of a valid target
                        msg = P.JointTarget(client.next_seq(), client.now(), tuple(q_walk), None, 0.04)
                        client.send_raw(_mutate_bytes(rng, P.encode(msg)))
                    elif kind < 88:  # random msgpack structures with a plausible header
                        head = [int(rng.choice([v, v + 1, 0])), int(rng.integers(0, 10)), client.next_seq(), client.now()]
                        client.send_raw(msgpack.packb(head + [_random_obj(rng) for _ in range(int(rng.integers(0, 5)))]))
                    elif kind < 94:  # random bytes, some oversized
                        client.send_raw(rng.bytes(int(rng.choice([int(rng.integers(0, 64)), int(rng.integers(1000, 3000))]))))
                    elif kind < 97:  # another peer
                        intruder.target(q_walk + rng.normal(0, 0.5, 7))
                    elif kind < 98:  # multipart
                        client.send_raw([b"x", P.encode(P.JointTarget(client.next_seq(), client.now(), tuple(q_walk)))])
                    else:  # heartbeat with random echoes
                        client.send(P.Heartbeat(client.next_seq(), client.now(), int(rng.integers(-1, 100)),
                                                int(rng.integers(-1, 2**40))))
                    sent += 1
                time.sleep(0.002)
                client.drain()
            assert wait_until(lambda: server.stats().n_received >= sent, 5.0)
            elapsed = time.monotonic() - t_start
            time.sleep(0.2)  # watchdog hold and braking included in the record
            st = server.stats()
            assert server.alive
            assert st.n_received >= N_MESSAGES
            # Broad coverage: many reasons seen, and a good share of plausible targets accepted.
            seen = {r for r, n in st.rejections.items() if n > 0}
            assert {Reject.MALFORMED, Reject.TRUNCATED, Reject.OVERSIZED, Reject.WRONG_VERSION, Reject.NON_FINITE,
                    Reject.POSITION_LIMIT, Reject.JUMP, Reject.STALE, Reject.FUTURE, Reject.REORDERED,
                    Reject.NOT_OWNER, Reject.MULTIPART} <= seen, seen
            assert st.n_accepted > 1000, st
            assert st.n_gate_refusals == 0
            recs = backend.records()
            assert len(recs) > 0.5 * elapsed * 1000  # the backend was commanded at roughly its rate
            assert_commands_within_limits(recs, lim)
            # And the arm really moved (the check above is not vacuous).
            q = np.stack([r.q for r in recs])
            assert np.ptp(q, axis=0).max() > 0.05
        finally:
            client.close()
            intruder.close()
