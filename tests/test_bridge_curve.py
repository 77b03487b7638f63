"""CURVE: with keys configured only authorised clients are heard; others move nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
import zmq.auth

from robot_bridge.testing import RawClient, RecordingBackend, running_server, wait_until
from robot_bridge import BindRefusedError, BridgeClient, BridgeTimeoutError, ClientConfig, RobotServer, ServerConfig
from robot_bridge.protocol import Mode

pytestmark = [pytest.mark.timeout(60), pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")]


@pytest.fixture
def keys(tmp_path):
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    certs = {}
    for name in ("server", "client", "rogue"):
        public, secret = zmq.auth.create_certificates(tmp_path, name)
        certs[name] = (public, secret)
    (authorized / "client.key").write_bytes((tmp_path / "client.key").read_bytes())
    return tmp_path, authorized, certs


def test_only_the_authorised_key_moves_the_robot(keys):
    tmp, authorized, certs = keys
    backend = RecordingBackend()
    with running_server(backend, curve_secret_key_file=str(certs["server"][1]),
                        curve_authorized_keys_dir=str(authorized)) as server:
        # 1. A client without CURVE at all.
        plain = RawClient(server.endpoint)
        try:
            with pytest.raises(TimeoutError):
                plain.handshake(timeout_s=0.5)
            for _ in range(3):
                try:
                    plain.target(np.zeros(7))
                except zmq.Again:
                    pass
        finally:
            plain.close()
        # 2. A CURVE client whose key is not authorised.
        rogue = BridgeClient(ClientConfig(server_address=server.endpoint,
                                          curve_server_public_key_file=str(certs["server"][0]),
                                          curve_client_secret_key_file=str(certs["rogue"][1])))
        with rogue:
            with pytest.raises(BridgeTimeoutError):
                rogue.connect(0.5)
            for _ in range(50):
                rogue.send_target(np.zeros(7))
        time.sleep(0.1)
        st = server.stats()
        assert st.n_received == 0 and st.session_id == 0 and server.mode is Mode.IDLE
        assert backend.records() == []  # nothing reached the backend boundary
        # 3. The authorised client is heard and moves the arm.
        good = BridgeClient(ClientConfig(server_address=server.endpoint,
                                         curve_server_public_key_file=str(certs["server"][0]),
                                         curve_client_secret_key_file=str(certs["client"][1])))
        with good:
            q0 = np.array(good.connect(2.0).q_rad)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.3:
                good.send_target(q0 + np.array([min(time.monotonic() - t0, 0.2) * 0.2, 0, 0, 0, 0, 0, 0]))
                good.poll(0.005)
            assert good.following
            assert wait_until(lambda: abs(backend.records()[-1].q[0] - q0[0] - 0.04) < 1e-3, 1.0)


def test_non_loopback_bind_is_allowed_only_with_keys(keys):
    tmp, authorized, certs = keys
    with pytest.raises(BindRefusedError):
        RobotServer(RecordingBackend(), ServerConfig(bind_address="tcp://0.0.0.0:0"))
    # With keys the configuration is accepted (not started here: tests bind loopback only).
    RobotServer(RecordingBackend(), ServerConfig(bind_address="tcp://0.0.0.0:0",
                                                 curve_secret_key_file=str(certs["server"][1]),
                                                 curve_authorized_keys_dir=str(authorized)))
