"""The franka_ros backend against a real ROS 1 master, with a node playing franka_ros_interface's
controller side (robot_bridge.backends.franka_ros_sim) in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import xmlrpc.client

import numpy as np
import pytest

pytest.importorskip("rospy")
pytest.importorskip("genpy")

from conftest_bridge import RecordingBackend, assert_commands_within_limits, wait_until  # noqa: E402
from robot_bridge import BridgeClient, ClientConfig, ErrorFlag, Mode, RobotServer, ServerConfig  # noqa: E402
from robot_bridge.backends._ros_msgs import message_classes  # noqa: E402
from robot_bridge.backends.franka_ros import FrankaRosBackend, FrankaRosConfig, errors_to_flags  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ros_master(tmp_path_factory):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}/"
    home = tmp_path_factory.mktemp("ros_home")
    env = dict(os.environ, ROS_MASTER_URI=uri, ROS_HOME=str(home), ROS_LOG_DIR=str(home / "log"),
               ROS_IP="127.0.0.1", ROS_HOSTNAME="127.0.0.1")
    master = subprocess.Popen([sys.executable, "-c", "from rosmaster.main import rosmaster_main; "
                               f"rosmaster_main(['rosmaster', '--core', '-p', '{port}'])"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = xmlrpc.client.ServerProxy(uri)
    deadline = time.monotonic() + 20
    while True:
        try:
            code, _, _ = proxy.getSystemState("/probe")
            if code == 1:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or master.poll() is not None:
            master.kill()
            pytest.fail("rosmaster did not come up")
        time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in ("ROS_MASTER_URI", "ROS_HOME", "ROS_LOG_DIR", "ROS_IP", "ROS_HOSTNAME")}
    os.environ.update({k: env[k] for k in saved})  # this process's rospy node uses the same master
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        master.terminate()
        master.wait(10)


@pytest.fixture(scope="module")
def controller(ros_master, tmp_path_factory):
    summary = tmp_path_factory.mktemp("ctrl") / "summary.json"
    proc = subprocess.Popen([sys.executable, "-m", "robot_bridge.backends.franka_ros_sim", "--summary", str(summary),
                             "--state-rate-hz", "500", "--duration-s", "100"], env=ros_master)
    try:
        yield summary
    finally:
        proc.terminate()
        proc.wait(10)


def read_summary(path):
    for _ in range(50):
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.05)
    raise AssertionError("no controller summary")


def test_message_classes_are_generated_from_the_kept_definitions():
    m = message_classes()
    jc = m["franka_core_msgs/JointCommand"]
    assert jc._type == "franka_core_msgs/JointCommand" and jc.IMPEDANCE_MODE == 4 and jc.POSITION_MODE == 1
    rs = m["franka_core_msgs/RobotState"]()
    assert len(rs.O_Jac_EE) == 42 and rs.current_errors.joint_reflex is False
    assert errors_to_flags(4, None) == ErrorFlag.REFLEX
    rs.current_errors.joint_position_limits_violation = True
    assert errors_to_flags(2, rs.current_errors) == ErrorFlag.BACKEND_FAULT | ErrorFlag.ROBOT_LIMIT
    assert errors_to_flags(2, m["franka_msgs/Errors"]()) == 0


def test_follows_through_franka_ros_interface_topics(controller):
    import rospy
    from std_msgs.msg import String

    backend = RecordingBackend(FrankaRosBackend(FrankaRosConfig(rate_hz=500.0, command_timeout_s=0.1)))
    server = RobotServer(backend, ServerConfig(bind_address="tcp://127.0.0.1:0")).start(timeout_s=20.0)
    inject = rospy.Publisher("/franka_ros_interface/sim/inject_error", String, queue_size=1, latch=True)
    try:
        with BridgeClient(ClientConfig(server_address=server.endpoint, rate_hz=100.0)) as client:
            q0 = np.array(client.connect(5.0).q_rad)
            assert np.allclose(q0, read_summary(controller)["q"], atol=1e-3)  # the held pose is the robot's
            goal = q0 + np.array([0.15, -0.1, 0.1, 0.1, -0.15, 0.1, 0.2])
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                a = min((time.monotonic() - t0) / 0.8, 1.0)
                client.send_target(q0 + a * (goal - q0))
                client.poll(0.01)
            assert client.following
            s = read_summary(controller)
            assert s["modes"] == [4] and s["bad_names"] == 0 and abs(s["timeout_s"] - 0.1) < 1e-9
            assert s["n_commands"] > 300
            assert np.allclose(s["last_position"], goal, atol=1e-3)
            # The robot's measured joints come back through the server to the client.
            assert np.allclose(client.state.q_rad, goal, atol=0.01)
            assert_commands_within_limits(backend.records(), server.limits)
            # A robot error (as franka_ros_interface reports it) stops commanding; clearing it holds.
            inject.publish(String("reflex"))
            assert wait_until(lambda: server.mode is Mode.ERROR, 3.0)
            st = client.wait_for_state(lambda st: st.mode == Mode.ERROR, 2.0)
            assert st.error_flags & ErrorFlag.REFLEX and not client.following
            n_rec = len(backend.records())
            time.sleep(0.3)  # let messages already on the wire arrive
            n = read_summary(controller)["n_commands"]
            time.sleep(0.3)
            assert len(backend.records()) == n_rec  # nothing crossed the backend boundary in ERROR...
            assert read_summary(controller)["n_commands"] == n  # ...and nothing reached the controller
            inject.publish(String(""))
            assert wait_until(lambda: server.mode is Mode.HOLD, 3.0)
            # Silence: the server holds, and the robot-side command timeout is set as a second line.
            assert read_summary(controller)["timeout_s"] == pytest.approx(0.1)
    finally:
        server.stop()
        inject.unregister()
