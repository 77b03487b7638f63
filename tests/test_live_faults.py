"""The live loop against the simulated workspace (a separate process on real sockets): faults.

Each test starts ``realsim world`` on free loopback ports and runs the live loop with short episodes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from launch._common import free_tcp_endpoints
from launch.deploy import DeployConfig, start_world, stop_process
from policies.expert import ExpertConfig, PushTExpert
from twin.live import LiveLinkError, LiveRunner
from sim_workspace.clients import WorldControl, clients_for

REPO = Path(__file__).resolve().parents[1]
LIGHT_EXPERT = ExpertConfig(contacts=8, push_distances_m=(0.02, 0.06), planner_worlds=48)


def deploy_config(steps: int = 40, **live) -> DeployConfig:
    cfg = DeployConfig()
    twin = replace(cfg.live.twin, max_episode_steps=steps)
    world = cfg.world.hands_off()
    scanner = replace(cfg.live.scanner, pose_iterations=15, iterations=30)  # the look at start, briefly (tests/test_scan.py)
    return replace(cfg, live=replace(cfg.live, twin=twin, episodes=1, settle_frames=3, scanner=scanner, **live), world=world)


@pytest.fixture
def world(tmp_path: Path):
    proc, cfg = start_world(deploy_config(), tmp_path)
    yield proc, cfg
    stop_process(proc)


@pytest.fixture
def exactly_calibrated_world(tmp_path: Path):
    """The simulated workspace with its look but a calibration file that holds the true camera poses."""
    cfg = deploy_config()
    cfg = replace(cfg, world=replace(cfg.world, calibration_error=replace(cfg.world.calibration_error, enabled=False)))
    proc, cfg = start_world(cfg, tmp_path)
    yield proc, cfg
    stop_process(proc)


def make_runner(cfg: DeployConfig, **live) -> LiveRunner:
    live_cfg = replace(cfg.live, **live)
    world, truth = clients_for(live_cfg.links.control_endpoint, live_cfg.links.truth_endpoint)
    return LiveRunner(live_cfg, PushTExpert(live_cfg.twin, LIGHT_EXPERT), world=world, truth=truth)


def test_camera_stall_predicts_open_loop_then_resumes(world, caplog) -> None:
    proc, cfg = world
    runner = make_runner(cfg, twin=replace(cfg.live.twin, max_episode_steps=70))
    control = WorldControl(cfg.live.links.control_endpoint)
    caplog.set_level(logging.WARNING, logger="twin.live")
    # the stall starts inside the episode (a timer from before run() raced the start-up: localisation,
    # settling and the first plan take 3-5 s here, and the stall could be over before the loop ran)
    try:
        run_with_event_at_step(runner, 5, lambda: control.pause_cameras(2.0))
    finally:
        control.close()
    assert runner.counters["camera_stalls"] >= 1
    assert runner.counters["open_loop_steps"] >= 5
    stalled = [i for i, r in enumerate(runner.records) if r.stalled]
    assert stalled, "no step ran open-loop"
    after = runner.records[stalled[-1] + 1:]
    assert any(r.correction_active for r in after), "correction did not resume after the stall"
    assert any("stalled" in m for m in caplog.messages) and any("back" in m for m in caplog.messages)
    assert runner.episodes[0]["reason"] in ("", "time limit")  # it ran to its end: no divergence


def run_with_event_at_step(runner: LiveRunner, step: int, event) -> int:
    """Run ``runner`` with ``event()`` called once, after control step ``step``; the step's record index."""
    done: list[int] = []

    def hook(record, frames, obs, info) -> None:
        if len(runner.records) == step:
            event()
            done.append(len(runner.records))

    runner.on_step = hook
    try:
        runner.run()
    finally:
        runner.close()
    assert done, "the episode ended before the event"
    return done[0]


def median_twin_error_after(runner: LiveRunner, first: int) -> float:
    after = [r for r in runner.records[first:] if r.truth_block is not None]
    assert after, "the episode ended right after the event"
    return float(np.median([np.linalg.norm(r.twin_block[:2] - r.truth_block[:2]) for r in after]))


def test_twin_that_lost_its_block_finds_it_again(world) -> None:
    """The twin's block is thrown 2 m away: it is put back where the cameras see it (by the measurement
    of frames that still show the twin's state before the throw, or by re-localising the block once its
    silhouette no longer covers the block's pixels)."""
    _, cfg = world
    runner = make_runner(cfg)
    kicked = run_with_event_at_step(
        runner, 8, lambda: runner.twin.physics.set_block_poses(np.array([0]), np.array([[2.0, 2.0, 0.0]])))
    assert runner.counters["snaps"] >= 1 and runner.counters["divergences"] == 0, runner.counters
    assert median_twin_error_after(runner, kicked + 5) < 0.02


def test_block_moved_by_a_person_is_relocalised(world) -> None:
    """'A person' moves the real block by 8 cm, further than the correction reaches: the loop
    re-localises the block and the twin follows it."""
    _, cfg = world
    runner = make_runner(cfg)
    before: list[np.ndarray] = []

    def push_towards_the_middle() -> None:  # a direction the workspace's edge cannot cut short
        before.append(runner.records[-1].truth_block.copy())
        to_middle = np.array([0.54, 0.0]) - before[0][:2]
        runner.control.nudge(0.08, float(np.arctan2(to_middle[1], to_middle[0])))

    with pytest.raises(RuntimeError, match="distance_m"):  # the control channel refuses a throw across the room
        runner.control.nudge(0.5)
    with pytest.raises(RuntimeError, match="direction_rad"):
        runner.control.nudge(0.05, float("nan"))
    nudged = run_with_event_at_step(runner, 8, push_towards_the_middle)
    assert runner.counters["relocalizations"] >= 1 and runner.counters["divergences"] == 0, runner.counters
    # after the jump the arm held while the correction converged (steps not counted in the episode)
    assert runner.counters["waits_for_correction"] >= 1, runner.counters
    assert runner.twin.elapsed_steps[0] <= runner.episodes[0]["steps"] - runner.counters["waits_for_correction"]
    assert median_twin_error_after(runner, nudged + 15) < 0.02
    moved = runner.records[nudged + 6].truth_block[:2] - before[0][:2]  # the nudge lasts 0.3 s
    heading = np.arctan2(*(np.array([0.54, 0.0]) - before[0][:2])[::-1])
    off_heading = abs(np.angle(np.exp(1j * (np.arctan2(moved[1], moved[0]) - heading))))
    assert np.linalg.norm(moved) > 0.03 and off_heading < np.deg2rad(30), (moved, np.rad2deg(off_heading))


def test_the_scan_refines_the_cameras_for_the_run(world) -> None:
    """The calibration file is off by the drawn error: after the scan at the start the run uses extrinsics
    refined against the scanned scene, which put table points nearer where the true camera sees them (seed 0:
    5.7 -> 4.8 mm)
    (``scan_metrics.camera_errors``' ``table_mm``); the correction renders and the stream's frames use them,
    and the file stays as it was."""
    from calibration import load_calibration
    from sim_workspace.scan_metrics import camera_errors

    _, cfg = world
    runner = make_runner(cfg, twin=replace(cfg.live.twin, max_episode_steps=3))
    try:
        runner.run()
        frames = runner._fresh_frames(timeout_s=2.0)
    finally:
        runner.close()
    told = load_calibration(cfg.live.links.calibration_path)
    poses = lambda cal: {s: (cal.camera(s).intrinsics, cal.camera(s).T_world_camera) for s in cal.serials}  # noqa: E731
    before, after = camera_errors(cfg.world, poses(told)), camera_errors(cfg.world, poses(runner.calibration))
    for serial in told.serials:
        assert after[serial]["table_mm"] < before[serial]["table_mm"], (before, after)
        T = runner.calibration.camera(serial).T_world_camera
        assert np.allclose(frames[serial].T_world_camera, T) and np.allclose(runner.corrector.renderer.camera(serial)[1], T)
        assert not np.allclose(T, told.camera(serial).T_world_camera)


def test_policy_waits_after_a_push_until_the_twin_agrees_with_the_images(world) -> None:
    """After each push the arm holds (the policy is not asked, the episode's step count stands still;
    the twin's arm brakes at its acceleration limit) until the measurement and the twin's block agree; at a tolerance no measurement meets (0.1 mm,
    0.01 degree) every wait runs to its bound."""
    _, cfg = world
    runner = make_runner(cfg, tracker=replace(cfg.live.tracker, settle_after_push_m=1e-4, settle_after_push_deg=0.01,
                                                settle_after_push_max_frames=3))
    asked: list[int] = []
    act = runner.policy.act

    def counted_act(obs):  # noqa: ANN001, ANN202
        asked.append(len(runner.records))
        return act(obs)

    runner.policy.act = counted_act
    try:
        runner.run()
    finally:
        runner.close()
    c = runner.counters
    assert c["waits_for_settling"] >= 3, c  # at least one push ended, and its wait took 3 frame sets
    waits = c["waits_for_settling"] + c["waits_for_robot"] + c["waits_for_correction"]
    assert len(asked) + waits == runner.episodes[0]["steps"] == len(runner.records)
    assert runner.twin.elapsed_steps[0] == len(asked)  # only the policy's steps count in the episode


def test_real_block_is_measured_and_the_twin_takes_it(exactly_calibrated_world) -> None:
    """The simulated workspace's block differs from the nominal one by up to 3 mm per dimension (drawn
    per run, not told): the first episode measures it, and the twin, its Gaussians and the expert's
    planner use the measured block; truth success is scored with the task's nominal T. (A calibration
    that is off scales and shifts what the camera measures: a 0.5 % focal error alone is 1 mm of the bar;
    the measurement is scored here with the true calibration, the scan of the look included.)"""
    from sim_workspace.world import draw_truth

    _, cfg = exactly_calibrated_world
    real = draw_truth(cfg.world, np.random.default_rng(cfg.world.seed))[0].block  # what the world drew
    runner = make_runner(cfg, twin=replace(cfg.live.twin, max_episode_steps=5), refine_calibration=False)
    try:
        summary = runner.run()
    finally:
        runner.close()
    fit = runner.block_fit
    assert fit is not None and summary["block_measured_mm"]["used"], summary.get("counters")
    measured = np.array([fit.shape.bar_length_m, fit.shape.bar_width_m, fit.shape.stem_width_m, fit.shape.stem_length_m])
    truth = np.array([real.bar_length_m, real.bar_width_m, real.stem_width_m, real.stem_length_m])
    assert np.all(np.abs(measured - truth) < 0.0015), (measured - truth) * 1e3
    assert runner.twin.config.block == fit.shape and runner.policy.twin_config.block == fit.shape
    assert runner.policy._planner.config.block == fit.shape
    assert runner.task_block == cfg.live.twin.block


def test_divergent_twin_stops_the_robot_and_fails_the_episode(world) -> None:
    """Without correction nothing brings a thrown block back: divergence."""
    proc, cfg = world
    runner = make_runner(cfg, correct=False)

    def kick(record, frames, obs, info) -> None:
        if len(runner.records) == 8:  # the twin's block is thrown far outside the workspace
            runner.twin.physics.set_block_poses(np.array([0]), np.array([[2.0, 2.0, 0.0]]))

    runner.on_step = kick
    try:
        runner.run()
    finally:
        runner.close()
    ep = runner.episodes[0]
    assert not ep["success"]
    assert "outside the workspace" in ep["reason"]
    assert ep["robot_held"] is True
    assert runner.counters["divergences"] == 1
    assert ep["steps"] <= 15  # kicked at step 8, outside for 6 steps


def test_world_killed_mid_episode_stops_deploy_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "launch.cli", "deploy", "--out", str(out), "--episodes", "2",
           "--set", "world.disturbances.enabled=false", "--set", "live.twin.max_episode_steps=200",
           "--set", "record_rrd=false", "--set", "expert.contacts=8", "--set", "expert.planner_worlds=48"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        # the status line shows once the first episode is under way
        while not any(line.startswith("episode 0") for line in list(lines)):
            assert proc.poll() is None, "deploy ended before the world was killed:\n" + "".join(lines[-20:])
            assert time.monotonic() < deadline, "the first episode never started"
            time.sleep(0.2)
        os.kill(int((out / "world.pid").read_text()), signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=60)
        reader.join(timeout=5)
        stderr = "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr[-2000:]
    assert time.monotonic() - killed_at < 20
    assert "stopped answering" in stderr or "no fresh camera frames" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert "aborted" in metrics


def test_robot_server_killed_mid_episode_ends_the_run_with_a_clear_error(world) -> None:
    """The robot server alone dies (the cameras go on): the loop stops within its robot timeout and
    names the server; it does not go on driving a twin no robot follows."""
    _, cfg = world
    (address,) = free_tcp_endpoints(1)
    server = subprocess.Popen([sys.executable, "-m", "launch.robot_server", "--backend", "sim",
                               "--set", f"server.bind_address={address}"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_at: list[float] = []

    def kill_server() -> None:
        server.kill()
        killed_at.append(time.monotonic())

    try:
        assert f"serving on {address}" in server.stdout.readline()
        runner = make_runner(cfg, links=replace(cfg.live.links, robot_address=address))
        with pytest.raises(LiveLinkError, match=f"robot server at {address} stopped answering"):
            run_with_event_at_step(runner, 5, kill_server)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
    assert killed_at, "the episode ended before the server was killed"
    assert time.monotonic() - killed_at[0] < cfg.live.links.robot_timeout_s + 3.0
