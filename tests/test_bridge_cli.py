"""`realsim robot-server` wiring and the ROS launch file that starts it next to franka_ros_interface."""

from __future__ import annotations

import ast
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_bridge import BridgeClient, ClientConfig

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "launch.robot_server", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_subcommand_is_registered():
    tree = ast.parse((REPO / "launch" / "cli.py").read_text())
    names = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.AnnAssign)
                 and getattr(n.target, "id", "") == "SUBCOMMAND_MODULES")
    assert "launch.robot_server" in names


def test_serves_the_sim_backend_until_interrupted(tmp_path):
    port = _free_port()
    saved = tmp_path / "resolved.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "launch.robot_server", "--backend", "sim", "--set",
                             f"server.bind_address=tcp://127.0.0.1:{port}", "--set", "server.safety.limit_factor=0.3",
                             "--save-config", str(saved), "--duration-s", "60"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert f"serving on tcp://127.0.0.1:{port}" in line, line
        assert "limit_factor: 0.3" in saved.read_text()
        with BridgeClient(ClientConfig(server_address=f"tcp://127.0.0.1:{port}", rate_hz=100)) as client:
            q0 = np.array(client.connect(5.0).q_rad)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.5:
                client.send_target(q0 + np.array([0.05, 0, 0, 0, 0, 0, 0]) * min((time.monotonic() - t0) / 0.3, 1))
                client.poll(0.01)
            assert client.following
            assert abs(client.state.q_rad[0] - q0[0]) > 0.01  # the simulated arm moved
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_refuses_bad_settings():
    out = _run("--set", "server.bind_address=tcp://0.0.0.0:5999", "--duration-s", "1")
    assert out.returncode == 1 and "CURVE" in out.stderr
    out = _run("--set", "server.no_such_key=1")
    assert out.returncode == 2 and "no_such_key" in out.stderr
    out = _run("--set", "server.safety.limit_factor=2.0")
    assert out.returncode != 0 and "limit_factor" in out.stderr
    out = _run("--print-config")
    assert out.returncode == 0 and "watchdog_timeout_s: 0.1" in out.stdout


def test_ros_launch_file_starts_the_bridge_with_the_franka_ros_backend():
    pytest.importorskip("roslaunch")
    import roslaunch.config
    import roslaunch.xmlloader

    from launch.robot_server import RobotServerJobConfig, build, add_parser
    import argparse

    pkg = REPO / "launch" / "ros" / "realsim_bridge"
    old = os.environ.get("ROS_PACKAGE_PATH")
    os.environ["ROS_PACKAGE_PATH"] = str(pkg.parent)
    try:
        cfg = roslaunch.config.ROSLaunchConfig()
        roslaunch.xmlloader.XmlLoader().load(str(pkg / "launch" / "robot_server.launch"), cfg, verbose=False,
                                             argv=["start_interface:=false", "python:=/opt/venv/bin/python",
                                                   "mode:=position"])
        import roslib.packages

        assert roslib.packages.find_node("realsim_bridge", "robot_server") == [str(pkg / "scripts" / "robot_server")]
    finally:
        if old is None:
            os.environ.pop("ROS_PACKAGE_PATH")
        else:
            os.environ["ROS_PACKAGE_PATH"] = old
    (node,) = cfg.nodes
    assert node.launch_prefix == "/opt/venv/bin/python" and node.required
    assert os.access(pkg / "scripts" / "robot_server", os.X_OK)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["robot-server", *shlex.split(node.args)])
    job = build(args)
    assert isinstance(job, RobotServerJobConfig)
    assert job.backend == "franka_ros" and job.franka_ros.mode == "position"
    assert job.server.bind_address == "tcp://127.0.0.1:5557"


def test_config_round_trips_through_yaml(tmp_path):
    path = tmp_path / "robot.yaml"
    first = _run("--backend", "franka_ros", "--set", "server.safety.watchdog_timeout_s=0.05", "--set",
                 "franka_ros.mode=position", "--save-config", str(path), "--print-config")
    second = _run("--config", str(path), "--print-config")
    assert first.returncode == 0 and second.returncode == 0
    assert first.stdout == second.stdout
    assert "backend: franka_ros" in second.stdout and "watchdog_timeout_s: 0.05" in second.stdout
