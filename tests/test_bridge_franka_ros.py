"""The franka_ros backend against a real ROS 1 master, with a node playing franka_ros_interface's
controller side (robot_bridge.backends.franka_ros_sim) in its own process, built from the upstream
message definitions kept in tests/data/franka_ros_msgs (not from the backend's own copies), so a
definition that differs from upstream's is refused by rospy as a robot PC would refuse it."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rospy")
pytest.importorskip("genpy")

from robot_bridge.testing import RecordingBackend, assert_commands_within_limits, wait_until  # noqa: E402
from robot_bridge import BackendError, BridgeClient, ClientConfig, ErrorFlag, Mode, RobotServer, ServerConfig  # noqa: E402
from robot_bridge.backends._ros_msgs import MSG_DIR, full_text, message_classes  # noqa: E402
from robot_bridge.backends.franka_ros import FrankaRosBackend, FrankaRosConfig, errors_to_flags  # noqa: E402

pytestmark = pytest.mark.timeout(120)

UPSTREAM = Path(__file__).resolve().parent / "data" / "franka_ros_msgs"  # verbatim upstream text, see SOURCES.md
# ROS MD5 sums computed from the upstream definitions (genpy), cross-checked in SOURCES.md against
# generated code of real catkin workspaces.
MD5 = {
    ("0.7.1", "franka_core_msgs/RobotState"): "5b1c24f59317c607d71ccadfc0800957",
    ("0.10.2", "franka_core_msgs/RobotState"): "380ed6f93e2f9638a809e6b00ef7462c",
    ("0.7.1", "franka_msgs/Errors"): "420c43ed3349b66b110f24531e7b53e5",
    ("0.10.2", "franka_msgs/Errors"): "082e9a670c96d8bc64b53e32777458e7",
    ("0.7.1", "franka_core_msgs/JointCommand"): "766f72e801d6180a86db23dbf2c2a56f",
    ("0.10.2", "franka_core_msgs/JointCommand"): "766f72e801d6180a86db23dbf2c2a56f",
}


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


def _start_controller(env, summary, namespace="/franka_ros_interface", version="0.7.1"):
    return subprocess.Popen([sys.executable, "-m", "robot_bridge.backends.franka_ros_sim", "--summary", str(summary),
                             "--state-rate-hz", "500", "--duration-s", "100", "--namespace", namespace,
                             "--franka-ros-version", version, "--definitions", str(UPSTREAM)], env=env)


@pytest.fixture(scope="module")
def controller(ros_master, tmp_path_factory):
    summary = tmp_path_factory.mktemp("ctrl") / "summary.json"
    proc = _start_controller(ros_master, summary)
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


def _upstream_md5(version: str, core: str, deps: tuple[str, ...]) -> str:
    import genpy.dynamic

    text = full_text(core, deps, f"franka_ros-{version}", UPSTREAM)
    return genpy.dynamic.generate_dynamic(core, text)[core]._md5sum


@pytest.mark.parametrize("version", ["0.7.1", "0.10.2"])
def test_md5_sums_are_those_of_the_upstream_definitions(version):
    m = message_classes(version)
    deps = {"franka_core_msgs/JointCommand": ("std_msgs/Header",),
            "franka_core_msgs/RobotState": ("std_msgs/Header", "franka_msgs/Errors")}
    for name in ("franka_core_msgs/JointCommand", "franka_core_msgs/RobotState", "franka_msgs/Errors"):
        assert m[name]._md5sum == MD5[(version, name)], name
        if name in deps:
            assert _upstream_md5(version, name, deps[name]) == MD5[(version, name)], name
    # the backend's copies are the upstream files, byte for byte
    for rel in ("franka_core_msgs/RobotState.msg", "franka_core_msgs/JointCommand.msg",
                f"franka_ros-{version}/franka_msgs/Errors.msg"):
        assert hashlib.sha256((MSG_DIR / rel).read_bytes()).digest() == hashlib.sha256((UPSTREAM / rel).read_bytes()).digest()


def test_franka_ros_releases_map_to_their_definitions():
    from robot_bridge.backends._ros_msgs import definition_set

    assert definition_set("0.7.1") == definition_set("0.2.0") == definition_set("0.8.2") == "franka_ros-0.7.1"
    assert definition_set("0.9.0") == definition_set("0.10.1") == "franka_ros-0.10.2"
    for bad in ("0.1.2", "1.0.0", "noetic", "0.10"):
        with pytest.raises(BackendError):
            definition_set(bad)
    assert len(message_classes("0.10.2")["franka_msgs/Errors"].__slots__) == 41
    assert len(message_classes("0.7.1")["franka_msgs/Errors"].__slots__) == 36


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


@pytest.mark.slow  # 30 s: a second franka_ros release's message set generated and refused, then configured
def test_a_robot_on_another_franka_ros_release_is_refused_until_configured(ros_master, tmp_path):
    """A robot PC on franka_ros 0.10.x: a backend speaking 0.7.1's RobotState gets joint states but never a
    robot_state (rospy refuses the subscription on the MD5 sum), so it refuses to follow; configured for
    0.10.2 it connects and sees the robot's errors."""
    import rospy
    from std_msgs.msg import String

    ns = "/robot_on_0_10"
    proc = _start_controller(ros_master, tmp_path / "summary.json", namespace=ns, version="0.10.2")
    try:
        wrong = FrankaRosBackend(FrankaRosConfig(namespace=ns, franka_ros_version="0.7.1", robot_state_timeout_s=2.0))
        with pytest.raises(BackendError, match="robot_state"):
            wrong.connect(timeout_s=30.0)  # joint states arrive (the controller's start-up takes most of this)
        right = FrankaRosBackend(FrankaRosConfig(namespace=ns, franka_ros_version="0.10.2"))
        right.connect(timeout_s=30.0)
        inject = rospy.Publisher(f"{ns}/sim/inject_error", String, queue_size=1, latch=True)
        try:
            assert right.read_state().error_flags == 0
            inject.publish(String("base_acceleration_invalid_reading"))  # a field only 0.9+ has
            assert wait_until(lambda: right.read_state().error_flags & ErrorFlag.BACKEND_FAULT, 3.0)
        finally:
            inject.publish(String(""))
            inject.unregister()
            right.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
