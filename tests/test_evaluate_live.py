"""`realsim evaluate` with the live stack (slow: real-time episodes on the simulated workspace): a twin state
saved by `realsim deploy --save-state` starts what-if rollouts, and `--compare-live` writes the comparison."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from policies.evaluation.comparison import live_record
from twin.state import load_twin_state

REPO = Path(__file__).resolve().parents[1]
LIGHT = ["--set", "live.scanner.pose_iterations=15", "--set", "live.scanner.iterations=30",
         "--set", "live.twin.max_episode_steps=8", "--set", "live.settle_frames=3",
         "--set", "world.disturbances.enabled=false", "--set", "expert.planner_worlds=24", "--set", "expert.contacts=6"]


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_deploy_saves_states_that_evaluate_forks_from(tmp_path) -> None:
    states = tmp_path / "states"
    proc = _cli("deploy", "--episodes", "1", "--out", str(tmp_path / "deploy"), "--save-state", str(states), *LIGHT,
                "--set", "record_rrd=false", "--set", "device=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_twin_state(states / "episode_000.npz")
    assert state.meta == {"source": "deploy", "episode": 0, "seed": 0, "step": 0} and state.elapsed_steps == 0
    out = tmp_path / "eval"
    proc = _cli("evaluate", "--policy", "expert:contacts=6,planner_worlds=24", "--from-state", str(states / "episode_000.npz"),
                "--episodes", "2", "--worlds", "2", "--videos", "1", "--device", "cpu", "--out", str(out), "--no-progress",
                "--set", "twin.max_episode_steps=5", "--set", "evaluate.observation_noise.position_m=0",
                "--set", "evaluate.observation_noise.yaw_rad=0")  # exact observations: the noise follows the seed
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "expert-contacts6-planner_worlds24" / "eval_info.json").read_text())
    assert info["from_state"] == state.meta and info["aggregated"]["episodes"] == 2
    # the deterministic expert from one state: both episodes alike, whatever their seeds
    a, b = info["per_episode"]
    assert a["seed"] != b["seed"] and np.isclose(a["max_coverage"], b["max_coverage"])


@pytest.mark.slow
def test_compare_live_writes_the_comparison(tmp_path) -> None:
    live_cfg = tmp_path / "live.yaml"
    live_cfg.write_text(yaml.safe_dump({"record_rrd": False, "world": {"disturbances": {"enabled": False}},
                                        "live": {"scanner": {"pose_iterations": 15, "iterations": 30}, "settle_frames": 3,
                                                 "rules": {"success_hold_steps": 3}, "tracker": {"contact_margin_m": 0.005}}}))
    out = tmp_path / "cmp"
    proc = _cli("evaluate", "--policy", "expert:contacts=6,planner_worlds=24", "expert:contacts=4,planner_worlds=8",
                "--episodes", "2", "--worlds", "2", "--videos", "0", "--compare-live", "--live-episodes", "1",
                "--live-config", str(live_cfg), "--device", "cpu", "--out", str(out), "--no-progress",
                "--set", "twin.max_episode_steps=8", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "comparison.json").read_text())
    assert report["policies"] == 2 and report["live_episodes"] == 2 and report["twin_episodes"] == 4
    for p in report["per_policy"]:
        live = json.loads((out / "live" / f"{p['policy']}.json").read_text())
        assert [e["seed"] for e in live["per_episode"]] == [1000]
        assert live["counters"] and all(isinstance(v, int) and v > 0 for v in live["counters"].values())  # the run's events
        twin = json.loads((out / p["policy"] / "eval_info.json").read_text())
        # the twin's episodes end by the live config's rules, touches counted with its tracker's margin
        assert twin["rules"]["success_hold_steps"] == 3 and twin["contact_margin_m"] == 0.005
    assert (out / "comparison.png").is_file()
    again = _cli("evaluate", "--combine", str(out))
    assert again.returncode == 0 and '"policies": 2' in again.stdout


@pytest.mark.slow
def test_compare_live_goes_on_after_ctrl_c(tmp_path) -> None:
    """Ctrl-C during the live part keeps the finished live episodes; the same command then goes on from the
    first episode not done (on a workspace of the same seed) and keeps the finished twin evaluation."""
    out, log_path = tmp_path / "cmp", tmp_path / "first.log"
    args = [sys.executable, "-m", "launch.cli", "evaluate", "--policy", "expert:contacts=6,planner_worlds=24",
            "--episodes", "2", "--worlds", "2", "--videos", "0", "--compare-live", "--live-episodes", "2",
            "--device", "cpu", "--out", str(out), "--no-progress", "--set", "twin.max_episode_steps=8"]
    name = "expert-contacts6-planner_worlds24"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 600
        while "episode 0 (seed 1000)" not in log_path.read_text():  # the first live episode is done
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    text = log_path.read_text()
    assert "the same command" in text
    assert not (out / "live" / f"{name}.json").exists()
    kept = json.loads((out / "live" / name / "partial.json").read_text())
    assert [e["seed"] for e in kept["episodes"]] == [1000]
    world_pid = int((out / "live" / name / "world.pid").read_text())
    assert not Path(f"/proc/{world_pid}").exists() or "zombie" in Path(f"/proc/{world_pid}/status").read_text().lower()
    twin_before = (out / name / "eval_info.json").read_text()

    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the finished evaluation" in again.stderr and "going on after the 1 kept" in again.stderr
    assert (out / name / "eval_info.json").read_text() == twin_before  # not evaluated again
    live = json.loads((out / "live" / f"{name}.json").read_text())
    assert [e["seed"] for e in live["per_episode"]] == [1000, 1001] and live["resumed_after"] == 1
    assert live["per_episode"][0] == live_record("", kept["episodes"])["per_episode"][0]
    assert not (out / "live" / name / "partial.json").exists()
