"""`realsim collect` end to end on the simulated workspace with the virtual operator: a dataset that
validates, kill -9 mid-episode then --resume, and clear errors before anything moves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from launch.cli import main as cli
from policies.dataset import DatasetReader, validate_dataset
from twin.config import WorkspaceConfig

REPO = Path(__file__).resolve().parents[1]


def _kill_orphan_world(out: Path) -> None:
    """The simulated workspace runs in its own session: after kill -9 of collect, end it by its pid
    (found by the config path unique to this test's run folder)."""
    marker = str(out / "world.yaml")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _collect(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "launch.cli", "collect", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class _CollectInTerminal:
    """`realsim collect ARGS` in a real pseudo-terminal (160 x 40): ``wait_for`` its output, ``type`` keys."""

    def __init__(self, *args: str) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # a terminal's size
        self.proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "collect", *args], cwd=REPO,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"), stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.text = ""

    def wait_for(self, pattern: str, timeout_s: float, start: int = 0) -> int:
        """Where ``pattern`` ends in the output after ``start``, waiting up to ``timeout_s``."""
        import re
        import select

        deadline = time.monotonic() + timeout_s
        while True:
            m = re.search(pattern, self.text[start:])
            if m:
                return start + m.end()
            assert time.monotonic() < deadline and self.proc.poll() is None, \
                f"{pattern!r} not seen; output:\n{self.text[-3000:]}"
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.text += os.read(self.master, 65536).decode(errors="ignore")
                except OSError:
                    pass

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self, out: Path) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        _kill_orphan_world(out)


def _episodes_on_disk(root: Path) -> int:
    try:
        return json.loads((root / "meta" / "info.json").read_text())["total_episodes"]
    except (OSError, ValueError, KeyError):
        return 0


def test_unwritable_dataset_fails_before_the_world_starts(tmp_path, capsys):
    out = tmp_path / "run"
    bad = Path("/proc/realsim/ds") if os.geteuid() == 0 else Path("/nonexistent-root/ds")
    assert cli(["collect", "--dataset", str(bad), "--out", str(out)]) == 2
    assert "cannot write the dataset" in capsys.readouterr().err
    assert not (out / "world.log").exists()  # nothing was started, nothing moved
    assert cli(["collect", "--dataset", str(tmp_path / "ds"), "--out", str(out), "--set", "min_free_mb=1000000000000"]) == 2
    assert "MB free" in capsys.readouterr().err
    assert cli(["collect", "--dataset", str(tmp_path / "none"), "--resume", "--out", str(out)]) == 2
    assert "holds no dataset" in capsys.readouterr().err
    # an absent device: a clear error, and the simulated workspace is never started
    assert cli(["collect", "--teleop", "gamepad", "--set", "gamepad.index=9", "--dataset", str(tmp_path / "g"),
                "--out", str(out)]) == 2
    assert "no gamepad at SDL index 9" in capsys.readouterr().err
    assert not (out / "world.log").exists()


def test_collect_kill_9_mid_episode_then_resume(tmp_path):
    root, out1, out2 = tmp_path / "ds", tmp_path / "run1", tmp_path / "run2"
    common = ["--dataset", str(root), "--set", "episode_time_s=4", "--set", "min_free_mb=10"]
    proc = _collect("--episodes", "3", "--out", str(out1), *common)
    try:
        deadline = time.monotonic() + 150
        while _episodes_on_disk(root) < 1:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no episode committed in time"
            time.sleep(0.2)
        time.sleep(3.0)  # the robot goes home, then episode 1 is in progress
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_orphan_world(out1)
    assert validate_dataset(root) == []
    assert DatasetReader(root).num_episodes == 1

    # an existing dataset needs --resume
    assert cli(["collect", "--out", str(out2), *common]) == 2
    proc = _collect("--episodes", "2", "--resume", "--out", str(out2), *common)
    try:
        text, _ = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_orphan_world(out2)
    assert proc.returncode == 0, text
    assert "dataset holds 2 episodes" in text
    assert validate_dataset(root) == []
    r = DatasetReader(root)
    assert r.num_episodes == 2
    summary = json.loads((out2 / "summary.json").read_text())
    seeds = [e["seed"] for e in summary["episodes"]]
    assert len(seeds) == 1 and seeds[0] >= 1  # the resumed run goes on with the next seed(s), not seed 0
    for i in range(2):
        d = r.episode(i)
        T = len(d["index"])
        assert 1 <= T <= 160  # 4 s at 10 Hz, plus steps spent waiting for the robot
        assert d["next.done"][-1, 0] and not d["next.done"][:-1].any()
        # observation.state's pusher is the twin's pusher body; environment_state's block is the twin's block
        np.testing.assert_allclose(d["observation.state"][:, :2], d["twin.body_poses"][:, 7:9], atol=2e-3)
        np.testing.assert_allclose(d["observation.environment_state"][:, :2], d["twin.body_poses"][:, 0:2], atol=1e-5)
        np.testing.assert_allclose(d["observation.state"][:, 2:], d["twin.joint_pos"], atol=1e-5)
        # actions: the expert's targets on the table; the follower's joints are recorded
        # the expert's targets are clamped into the workspace, as the robot's are; a step spent waiting (for the
        # robot, for the correction) holds the pusher where it is, which tracking can leave just past the edge
        ws = WorkspaceConfig()
        inside = np.all((d["action"] >= ws.low - 1e-6) & (d["action"] <= ws.high + 1e-6), axis=1)
        held = np.all(np.abs(d["action"] - d["observation.state"][:, :2]) < 1e-6, axis=1)
        assert np.all(inside | held), d["action"][~(inside | held)]
        assert np.isfinite(d["twin.robot_joint_pos"][5:]).all()
        top, _ = r.video("observation.images.top", i)
        raw, _ = r.raw_video("sim-cam-0", i)
        assert top.shape == (T, 96, 96, 3) and raw.shape == (T, 120, 160, 3)
        assert raw[-1].mean() > 20 and top[-1].std() > 10  # real pictures, not blank frames


def test_keyboard_episode_control_in_a_terminal(tmp_path):
    """collect --teleop keyboard in a real pseudo-terminal: arrows move the pusher target, r re-records,
    n ends and keeps the episode, q stops."""
    root, out = tmp_path / "ds", tmp_path / "run"
    term = _CollectInTerminal("--teleop", "keyboard", "--episodes", "3", "--dataset", str(root), "--out", str(out),
                              "--set", "episode_time_s=30", "--set", "min_free_mb=10", "--set", "record_raw_frames=false")
    try:
        pos = term.wait_for(r"ep 0 step [3-9]", 150)
        term.type(b"\x1b[A\x1b[Ar")
        pos = term.wait_for(r"re-recording episode 0", 30, pos)
        pos = term.wait_for(r"ep 0 step [2-9]", 60, pos)
        term.type(b"\x1b[A" * 4 + b"d" * 2)  # +x 4 presses, then -y 2 presses
        time.sleep(1.0)
        term.type(b"n")
        pos = term.wait_for(r"saved episode 0", 30, pos)
        pos = term.wait_for(r"ep 1 step [1-9]", 60, pos)
        term.type(b"q")
        term.wait_for(r"stopped by the operator", 30, pos)
        term.proc.wait(timeout=30)
    finally:
        term.close(out)
    assert term.proc.returncode == 0, term.text[-3000:]
    assert validate_dataset(root) == []
    r = DatasetReader(root)
    assert r.num_episodes == 1  # the re-recorded attempt and the stopped one are not kept
    d = r.episode(0)
    assert 10 <= len(d["index"]) < 300  # ended early by "n"
    a, start = d["action"].astype(float), d["observation.state"][0, :2].astype(float)
    # each press moves the target 0.05 s at 0.15 m/s = 7.5 mm (default mapping): +x 30 mm, -y 15 mm
    np.testing.assert_allclose(a[-1] - start, [0.030, -0.015], atol=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"][0]["seed"] == 0 and summary["episodes"][0]["reason"] == "operator: next"


@pytest.mark.slow
def test_a_trained_policy_drives_and_the_keyboard_takes_over(tmp_path):
    """collect --policy CKPT --teleop keyboard in a real pseudo-terminal: the checkpoint drives, arrow keys
    take over (those frames say control.by_operator), and the policy drives again after the keys stop."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _policy_data import TINY_POLICY, write_line_dataset

    sets = [x for s in TINY_POLICY + ["eval.seeds=[]", "optim.batch_size=16"] for x in ("--set", s)]
    assert cli(["train", "--no-progress", "--dataset", str(write_line_dataset(tmp_path / "lines")), "--steps", "10",
                "--out", str(tmp_path / "train"), *sets]) == 0
    ckpt = tmp_path / "train" / "checkpoints" / "last" / "pretrained_model"
    root, out = tmp_path / "ds", tmp_path / "run"
    term = _CollectInTerminal("--policy", str(ckpt), "--teleop", "keyboard", "--episodes", "1", "--dataset", str(root),
                              "--out", str(out), "--set", "episode_time_s=15", "--set", "min_free_mb=10",
                              "--set", "record_raw_frames=false")
    try:
        term.wait_for(r"ep 0 step (1[0-9]|[2-9][0-9])", 150)  # the policy has driven a while
        for _ in range(6):
            term.type(b"\x1b[A")  # up: +x
            time.sleep(0.1)
        term.wait_for(r"the operator takes over", 30)
        term.wait_for(r"the policy drives again", 30)
        term.wait_for(r"saved episode 0", 60)  # the time limit ends the episode
        term.proc.wait(timeout=60)
    finally:
        term.close(out)
    assert term.proc.returncode == 0, term.text[-3000:]
    assert validate_dataset(root) == []
    d = DatasetReader(root).episode(0)
    by_op = d["control.by_operator"][:, 0]
    first = int(np.argmax(by_op))
    assert by_op.any() and not by_op[:first].any() and not by_op[-3:].any()  # policy, operator, policy again
    summary = json.loads((out / "summary.json").read_text())["episodes"][0]
    assert summary["takeovers"] >= 1 and summary["operator_steps"] == int(by_op.sum())  # held steps are nobody's
