"""The robot server's motion safety end to end, over real loopback sockets: stopping brakes the arm at
the caps, no message can kill the server, a failure brakes before the server ends, targets cannot
outrun the velocity limit, and the operator's error recovery."""

from __future__ import annotations

import argparse
import math
import time

import msgpack
import numpy as np
import pytest

from robot_bridge import ServerFailedError
from robot_bridge import protocol as P
from robot_bridge.protocol import Mode, Reject
from robot_bridge.testing import (RawClient, RecordingBackend, assert_commands_within_limits, running_server, stream,
                                  wait_until)

pytestmark = pytest.mark.timeout(60)


def _count(server, reason) -> int:
    return server.stats().rejections.get(reason, 0)


def _ramp_joint1(client: RawClient, q0: np.ndarray, speed: float, seconds: float) -> None:
    """Targets at 1 kHz moving joint 1 at ``speed`` [rad/s], starting from ``q0``."""
    stream(client, lambda t: q0 + np.array([speed * t, 0, 0, 0, 0, 0, 0]), seconds, rate_hz=1000.0)


def test_stop_while_moving_at_the_velocity_cap_brakes_to_rest_before_the_backend_is_released():
    backend = RecordingBackend()
    with running_server(backend) as server:
        client = RawClient(server.endpoint)
        try:
            q0 = np.array(client.handshake().q_rad)
            vmax = server.limits.dq_max_rad_s[0]
            _ramp_joint1(client, q0, vmax, 0.6)
            moving = backend.records()[-1]
            assert moving.dq[0] > 0.95 * vmax  # at (close to) the velocity cap when stopped
            server.stop()
        finally:
            client.close()
    recs = backend.records()
    m = assert_commands_within_limits(recs, server.limits)  # the acceleration and jerk caps held throughout
    assert m["a"] > 0.95  # it braked at the cap, not gently
    assert not recs[-1].dq.any() and not recs[-1].ddq.any()  # exactly at rest...
    assert backend.disconnected_ns > recs[-1].t_rx_ns  # ...before the backend was released
    braking = [r for r in recs if r.t_ns > moving.t_ns]
    t_stop = (braking[-1].t_ns - moving.t_ns) * 1e-9
    assert t_stop < 2.0 * vmax / server.limits.ddq_max_rad_s2[0]


@pytest.mark.parametrize("rate", [1e-301, 0.0, -1.0, math.nan, math.inf, 1e301, 1000.5, 0.5])
def test_hellos_with_absurd_numbers_are_refused_and_the_server_stays_up(rate):
    with running_server() as server:
        client = RawClient(server.endpoint)
        try:
            client.send_raw(msgpack.packb([P.PROTOCOL_VERSION, int(P.MsgType.HELLO), 1, client.now(), "twin", rate]))
            reason = Reject.NON_FINITE if not math.isfinite(rate) else Reject.OUT_OF_RANGE
            assert wait_until(lambda: _count(server, reason) == 1, 1.0)
            assert server.alive and server.mode is Mode.IDLE
            q0 = np.array(client.handshake().q_rad)  # and it still serves
            client.target(q0)
            assert wait_until(lambda: server.mode is Mode.FOLLOWING, 1.0)
        finally:
            client.close()


def test_an_exception_in_the_loop_brakes_the_arm_then_ends_the_server():
    backend = RecordingBackend()
    with running_server(backend) as server:
        client = RawClient(server.endpoint)
        try:
            q0 = np.array(client.handshake().q_rad)
            _ramp_joint1(client, q0, 0.8 * server.limits.dq_max_rad_s[0], 0.4)

            def broken(sock):
                raise RuntimeError("a bug reached by some message")

            server._drain = broken  # the next loop iteration fails
            client.target(q0)
            assert wait_until(lambda: not server.alive, 2.0)
            with pytest.raises(ServerFailedError) as info:
                server.check()
            assert "a bug reached" in str(info.value.__cause__)
        finally:
            client.close()
            server._error = None  # raised above already; let the context manager stop it
    recs = backend.records()
    assert_commands_within_limits(recs, server.limits)
    assert not recs[-1].dq.any() and not recs[-1].ddq.any()  # brought to rest before the server ended
    assert max(abs(r.dq[0]) for r in recs) > 0.5 * server.limits.dq_max_rad_s[0]


def test_targets_cannot_move_the_reference_faster_than_the_velocity_limit():
    """Steps of 0.05 rad every millisecond (each under max_jump_rad from the previous target, 50 rad/s
    in all): the reference runs at the velocity cap, and targets that get too far ahead are refused."""
    backend = RecordingBackend()
    with running_server(backend) as server:
        client = RawClient(server.endpoint)
        try:
            q0 = np.array(client.handshake().q_rad)
            client.target(q0)
            assert wait_until(lambda: server.mode is Mode.FOLLOWING, 1.0)
            for k in range(1, 41):
                client.target(q0 + np.array([0.05 * k, 0, 0, 0, 0, 0, 0]))
                time.sleep(0.001)
            assert wait_until(lambda: _count(server, Reject.JUMP) > 10, 1.0)
            assert server.stats().n_accepted < 10
        finally:
            client.close()
    m = assert_commands_within_limits(backend.records(), server.limits)
    assert m["v"] <= 1.0 + 1e-9


def test_the_operator_recovers_a_robot_error_only_from_error():
    backend = RecordingBackend()
    with running_server(backend) as server:
        client = RawClient(server.endpoint)
        try:
            client.handshake()
            client.send(P.Recover(client.next_seq(), client.now()))  # not in ERROR: refused, nothing done
            assert wait_until(lambda: _count(server, Reject.UNEXPECTED_TYPE) == 1, 1.0)
            assert backend.n_recoveries == 0
            backend.error_flags = int(P.ErrorFlag.REFLEX)
            assert wait_until(lambda: server.mode is Mode.ERROR, 1.0)
            client.send(P.Recover(client.next_seq(), client.now()))
            assert wait_until(lambda: server.mode is Mode.HOLD, 1.0)
            assert backend.n_recoveries == 1 and server.stats().n_recoveries == 1
        finally:
            client.close()


def test_robot_server_exits_non_zero_when_its_server_thread_fails(monkeypatch):
    import launch.robot_server as job

    class FailingAfterAWhile(RecordingBackend):
        def read_state(self):
            if time.monotonic() - self.t0 > 0.3:
                raise RuntimeError("robot connection lost")
            return super().read_state()

    def make(cfg):
        b = FailingAfterAWhile()
        b.t0 = time.monotonic()
        return b

    monkeypatch.setattr(job, "make_backend", make)
    args = argparse.Namespace(config=None, overrides=["server.bind_address=tcp://127.0.0.1:0"], backend="sim",
                              duration_s=10.0, print_config=False, save_config=None, log_level="ERROR")
    t0 = time.monotonic()
    assert job.run(args) == 1
    assert time.monotonic() - t0 < 5.0


def test_robot_server_recover_asks_the_running_server_for_recovery(capsys):
    import launch.robot_server as job

    backend = RecordingBackend()
    with running_server(backend) as server:
        twin = RawClient(server.endpoint)
        try:
            twin.handshake()
            backend.error_flags = int(P.ErrorFlag.REFLEX)
            assert wait_until(lambda: server.mode is Mode.ERROR, 1.0)
            args = argparse.Namespace(config=None, overrides=[f"server.bind_address={server.endpoint}"], backend=None,
                                      duration_s=None, print_config=False, save_config=None, log_level="ERROR",
                                      recover=True)
            assert job.run(args) == 0
            assert backend.n_recoveries == 1 and server.mode is Mode.HOLD
            assert "robot in HOLD" in capsys.readouterr().out
        finally:
            twin.close()
