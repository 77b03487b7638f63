"""The libfranka backend through pylibfranka against franky-sim (a libfranka-protocol simulator).

Both live in their own environment (franky-sim pins a mujoco that differs from the main one):
``make libfranka-env`` builds ``.venv-libfranka`` (about 20 s, 700 MB), and ``make test`` builds it and
runs this test (about 10 s). ``REALSIM_LIBFRANKA_PYTHON`` names another environment; without either,
the test is skipped.

franky-sim simulates an FR3 and checks nothing about the commands it receives (no reflex on a
discontinuity), so the test checks what a real robot would: every position written to the robot, cycle
by cycle, within the position limits and the velocity, acceleration and jerk caps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[1]
_LOCAL = REPO / ".venv-libfranka" / "bin" / "python"
PYTHON = os.environ.get("REALSIM_LIBFRANKA_PYTHON", "") or (str(_LOCAL) if _LOCAL.exists() else "")

DRIVER = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from robot_bridge.testing import Record, RecordingBackend, assert_commands_within_limits
    from robot_bridge import BridgeClient, ClientConfig, RobotServer, ServerConfig
    from robot_bridge.backends.libfranka import LibfrankaBackend, LibfrankaConfig

    def written(backend):
        """What the robot received, cycle by cycle, as records at the robot's cycle times."""
        return [Record(t, t, np.array(m.q_rad), np.array(m.dq_rad_s), np.array(m.ddq_rad_s2), -1, -1, k == 0)
                for k, (t, m) in enumerate(list(backend.written))]

    backend = RecordingBackend(LibfrankaBackend(LibfrankaConfig(hostname=sys.argv[1])))
    server = RobotServer(backend, ServerConfig(bind_address="tcp://127.0.0.1:0")).start(timeout_s=30)
    try:
        with BridgeClient(ClientConfig(server_address=server.endpoint, rate_hz=100)) as client:
            q0 = np.array(client.connect(5).q_rad)
            goal = q0 + np.array([0.2, -0.1, 0.1, -0.1, 0.1, 0.1, 0.2])
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3.0:
                a = min((time.monotonic() - t0) / 1.5, 1.0)
                client.send_target(q0 + a * (goal - q0))
                client.poll(0.01)
            following = client.following
            q_robot = np.array(client.state.q_rad)
        assert_commands_within_limits(backend.records(), server.limits)
        st = server.stats()
    finally:
        server.stop()
    inner = backend.inner
    robot = assert_commands_within_limits(written(inner), server.limits)  # at the robot, after the stop too
    last = inner.written[-1][1]
    print(json.dumps({"following": following, "err": float(np.abs(q_robot - goal).max()),
                      "cycles": inner.n_cycles, "robot_error": repr(inner.error), "ticks": st.n_ticks,
                      "rejected": st.n_rejected, "robot_ratios": [robot["v"], robot["a"], robot["j"]],
                      "written": len(inner.written), "ended_at_rest": last.at_rest}))
''')


@pytest.mark.skipif(not PYTHON, reason="REALSIM_LIBFRANKA_PYTHON names no libfranka environment")
def test_follows_franky_sim_through_pylibfranka(tmp_path):
    sim_bin = Path(PYTHON).with_name("franky-sim")
    sim = subprocess.Popen([str(sim_bin), "-s", "mujoco"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, cwd=tmp_path)
    try:
        host = None
        deadline = time.monotonic() + 120
        while host is None and time.monotonic() < deadline:
            line = sim.stdout.readline()
            if not line:
                break
            if "as the robot IP address" in line:
                host = line.split("'")[1]
        assert host is not None and host.startswith("127."), "franky-sim did not start on loopback"
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}")
        out = subprocess.run([PYTHON, str(driver), host], capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(result, file=sys.stderr)
        assert result["following"] and result["robot_error"] == "None"
        assert result["err"] < 0.01  # the simulated FR3 reached the goal through libfranka
        assert result["cycles"] > 1500 and result["rejected"] == 0
        assert result["ended_at_rest"] and result["written"] > 1500
        assert result["robot_ratios"][0] > 0.05  # the robot really moved
    finally:
        sim.terminate()
        sim.wait(20)
