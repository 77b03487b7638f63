"""The live loop: the corrected twin runs a policy on the simulated robot while the real robot follows.

Per control step (``twin.control_hz``): take the newest calibrated frame set (never block), let the
block tracker correct the twin with it (``twin.perception.tracker``), let the policy act on the twin's
observation, step the twin with the visual forces, and hand the twin's joints to the robot through the
bridge (``robot_bridge.JointStreamer`` interpolates them at ``links.target_rate_hz``). Success is
detected on the twin. Between episodes the robot is driven back to the start pose, the scene is reset
(by the injected simulated workspace's control, or on hardware by the operator) and the block is
localised.

Faults: a robot server that stops answering ends the run with ``LiveLinkError``; a camera stream that
stalls makes the twin predict open-loop (counted, warned once per stall) until frames return; a twin
that diverges (``rules.DivergenceCheck``) stops the robot, which holds, and fails the episode with the
reason.

Metrics (per episode and overall) are returned by ``run()``; ``LiveRecorder`` writes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from typing import Any, Callable

import numpy as np

from ..perception.correction import CorrectionResult
from ..perception.shape_fit import ShapeFit
from .config import LiveConfig
from .metrics import StepRecord, TruthAlignment
from .rules import DivergenceCheck, SuccessWindow

__all__ = ["LiveLinkError", "LiveRunner"]

log = logging.getLogger("twin.live")


class LiveLinkError(RuntimeError):
    """The robot server or the camera stream is gone: the live run cannot go on."""


@contextlib.contextmanager
def _link_errors():
    """The robot link's errors as the live loop's own (``LiveLinkError``)."""
    from robot_bridge import LinkLostError

    try:
        yield
    except LinkLostError as exc:
        raise LiveLinkError(str(exc)) from exc


class LiveRunner:
    """Runs episodes of the live loop with a policy (``policies.Policy``) on one twin world.

    ``on_step(record, frames, obs, info)`` is called after every control step (recording, teleop
    display); ``prompt(text)`` asks the operator on hardware (default: ``input``). ``world`` (with
    ``reset(seed)``) replaces the operator's reset, and ``truth`` (with ``poll()`` and ``history``)
    feeds the fidelity metrics: the simulated workspace's clients, passed in by launch/ or a
    benchmark; the runner closes them.
    """

    def __init__(self, config: LiveConfig, policy, on_step: Callable[..., None] | None = None,
                 prompt: Callable[[str], Any] = input, device: str = "cpu", world=None, truth=None) -> None:
        from calibration import load_calibration

        from ..cameras import StreamConfig, StreamSource
        from ..perception.correction import VisualCorrector
        from ..env import PushTEnv
        from ..gaussian_scene import GaussianScene

        self.config = config
        self.policy = policy
        self.on_step = on_step
        self.prompt = prompt
        self.counters: Counter[str] = Counter()
        if not config.links.calibration_path:
            raise ValueError("LiveConfig.links.calibration_path is required (the rig's calibration file)")
        self.calibration = load_calibration(config.links.calibration_path)
        self.twin = PushTEnv(config.twin)
        if self.twin.num_worlds != 1:
            raise ValueError("the live loop runs one twin world")
        self.corrector = VisualCorrector(GaussianScene(config.twin, config.gaussians), config.correction,
                                         device=device)  # Warp's names ("cpu", "cuda:0") are torch's
        self.set_calibration(self.calibration)
        self.camera = StreamSource(StreamConfig(endpoint=config.links.camera_endpoint, serials=self.calibration.serials),
                                   self.calibration, max_frame_age_s=config.links.max_frame_age_s,
                                   frame_timeout_s=max(1.0, config.links.stall_timeout_s))
        from robot_bridge.streamer import JointStreamer

        self.streamer = JointStreamer(config.links.robot_address, config.links.target_rate_hz, config.links.robot_timeout_s)
        #: The scene's reset (a simulated workspace's control channel; None: the operator is asked) and
        #: a truth observer for metrics (tests and benchmarks only): injected, never built here, so the
        #: live loop cannot read the simulated workspace's hidden state on its own.
        self.control = world
        self.truth = truth
        self.records: list[StepRecord] = []
        self._alignment = TruthAlignment()
        #: The task's T (truth success is scored with it) and the measured block, once measured.
        self.task_block = config.twin.block
        self.block_fit: ShapeFit | None = None
        from ..perception.tracker import BlockTracker

        self.tracker = BlockTracker(config.tracker, self.twin, self.corrector, config.twin.block,
                                    config.twin.physics.pusher_radius_m, config.localizer, config.correction.reach_m,
                                    self.counters, correct=config.correct)
        #: How the block is found in the images (its colour: the scanned block's once the scene is known).
        self.localizer = config.localizer
        #: The scene the twin renders: loaded from ``scene_path``, or scanned at the first episode.
        self.scene_data = None
        self.scan_result = None
        self.calibration_refinement = None  # serial -> ExtrinsicsRefinement, from the scan (live.refine_calibration)
        if config.scene_path:
            from ..scene_file import load_scene

            self.use_scene(load_scene(config.scene_path, required_bodies=self.corrector.scene.body_names))
        self._robot_lag_s = config.robot.lag_s
        self._divergence = DivergenceCheck(config.rules, config.twin.workspace)
        from .state_saver import StateSaver

        self.state_saver = StateSaver(config.save_state_dir) if config.save_state_dir else None
        self.episodes: list[dict[str, Any]] = []
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        for closer in (self.streamer.close, self.camera.stop):
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - best effort on shutdown, reported
                log.warning("while closing: %s", exc)
        if self.control is not None:
            self.control.close()
        if self.truth is not None:
            self.truth.close()

    def start(self) -> None:
        """Start the camera stream and the robot link (raises ``LiveLinkError`` when no robot answers)."""
        self.camera.start()
        with _link_errors():
            self.streamer.start()

    def run(self, first_episode: int = 0) -> dict[str, Any]:
        """Episodes ``first_episode``... ``episodes - 1`` (seeds ``seed + k``; a run that goes on from an
        interrupted one starts where it stopped); returns the summary (see ``summary``). Raises
        ``LiveLinkError`` when the robot or the cameras are gone (the episodes so far are kept in
        ``self.episodes``, as they are on Ctrl-C)."""
        self.start()
        for k in range(first_episode, self.config.episodes):
            self.episodes.append(self.run_episode(k))
        return self.summary()

    # ------------------------------------------------------------------ one episode
    def _fresh_frames(self, timeout_s: float):
        from ..cameras import CameraError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.camera.read(timeout_s=min(0.5, max(0.05, deadline - time.monotonic())))
            except CameraError as exc:
                if time.monotonic() > deadline:
                    raise LiveLinkError(f"no fresh camera frames from {self.config.links.camera_endpoint}: {exc}") from exc
            self.streamer.check()

    def run_episode(self, k: int) -> dict[str, Any]:
        """One episode (seed ``seed + k``); raises ``LiveLinkError`` when the robot or the cameras are gone."""
        with _link_errors():
            return self._run_episode(k)

    def _run_episode(self, k: int) -> dict[str, Any]:
        from ..perception.localize import LocalizationError, localize_block

        cfg = self.config
        seed = cfg.seed + k
        self.streamer.move_to(self.twin.q_start, cfg.robot.reset_speed_rad_s, cfg.robot.reset_tolerance_rad)
        if self.control is not None:
            self.control.reset(seed)
        else:
            self.prompt(f"Episode {k}: place the T block in the workspace, then press Enter. ")
        time.sleep(0.3)  # frames taken before the reset are still in flight
        frames = self._fresh_frames(timeout_s=5.0)
        if self.scene_data is None and cfg.scan:
            try:
                self.scan(seed)
            except LocalizationError as exc:  # tried again at the next episode
                return self._episode_result(k, seed, False, f"scene not scanned: {exc}", 0, 0.0)
            frames = self._fresh_frames(timeout_s=5.0)
        try:
            loc = localize_block(frames, cfg.twin.block, self.localizer)
        except LocalizationError as exc:
            return self._episode_result(k, seed, False, f"block not localised: {exc}", 0, 0.0)
        q_robot = self.streamer.robot_q()
        self.twin.reset(seed=seed, options={"block_pose": loc.pose[None], "joint_pos": (q_robot if q_robot is not None else self.twin.q_start)[None]})
        self.policy.reset(seeds=np.array([seed]))  # a sampling policy draws its noise from the episode seed
        self.streamer.set_path(self.twin.joint_positions()[0], self.twin.joint_positions()[0], 0.0)
        lag, _ = self.streamer.follower_lag()
        if np.isfinite(lag):
            self._robot_lag_s = lag
        self.streamer.reset_tracking()
        obs = self.twin.observe()
        for _ in range(cfg.settle_frames if cfg.correct else 0):
            frames = self._fresh_frames(timeout_s=2.0)
            result = self.corrector.correct(frames, self.twin)
            obs, *_ = self._step_twin(obs.pusher_xy, result)
        if cfg.correct and cfg.shape_fit_frames > 0 and self.block_fit is None:
            self._measure_block(seed)
            obs = self.twin.observe()
        self.twin.elapsed_steps[:] = 0  # the settling steps are not part of the episode
        self.tracker.reset()
        if self.state_saver is not None:
            self.state_saver.episode_start(self.twin, k, seed)
        t_start = time.monotonic()
        dt = self.twin.dt
        next_t = time.monotonic()
        last_frame_t = time.monotonic()
        stalled, bad_frames, steps = False, 0, 0
        success = SuccessWindow(cfg.twin.goal.success_coverage + cfg.rules.success_margin, cfg.rules.success_hold_steps)
        tracker = self.tracker
        self._divergence.reset()
        info: dict[str, Any] = {"coverage": np.zeros(1), "is_success": np.zeros(1, bool)}
        while True:
            self.streamer.check()
            frames = self.camera.poll(allow_stale=True)  # a late set is counted and skipped by the corrector
            result = CorrectionResult()
            now = time.monotonic()
            if frames is not None:
                last_frame_t = now
                if stalled:
                    log.warning("camera frames are back after %.1f s: correction resumes", now - self._stall_since)
                    stalled = False
                if cfg.correct:
                    update = tracker.update(frames, obs.block_pose[0])
                    result = update.result
                    bad_frames = bad_frames + 1 if (result.active and result.loss > cfg.rules.max_residual) else 0
                    if update.relocalized:
                        bad_frames = 0
                    if update.snapped:
                        obs = self.twin.observe()  # the policy acts on the block where it now is
            elif now - last_frame_t > cfg.links.stall_timeout_s and not stalled:
                stalled = True
                self._stall_since = last_frame_t
                self.counters["camera_stalls"] += 1
                log.warning("camera stream stalled (no frame for %.1f s): the twin predicts open-loop", now - last_frame_t)
            if stalled:
                self.counters["open_loop_steps"] += 1
            q_robot = self.streamer.robot_q()
            waiting = q_robot is not None and np.max(np.abs(q_robot - self.twin.joint_positions()[0])) > cfg.robot.sync_tolerance_rad
            if waiting:
                # the robot lags: the twin holds its arm (physics and correction go on) until it catches up
                self.counters["waits_for_robot"] += 1
                action = obs.pusher_xy.copy()
            elif tracker.settling_after_jump and not stalled:
                # the block jumped: the arm holds while the correction converges on its new pose
                self.counters["waits_for_correction"] += 1
                waiting = True
                action = obs.pusher_xy.copy()
            elif tracker.settling_after_push and not stalled and not tracker.touching:
                # a push ended: the arm holds until the twin's block agrees with the images
                self.counters["waits_for_settling"] += 1
                waiting = True
                action = obs.pusher_xy.copy()
            else:
                action = self.policy.act(obs)
            obs, _, terminated, truncated, info = self._step_twin(action, result)
            if waiting:  # a step spent waiting (robot, correction) is not a policy step of the episode
                self.twin.elapsed_steps[0] -= 1
                truncated = self.twin.elapsed_steps >= self.twin.config.max_episode_steps
            steps += 1
            reason = self._divergence.update(obs, bad_frames)
            truth = None if self.truth is None else self.truth.poll()
            record = StepRecord(
                t_s=now - self._t0, episode=k, twin_block=obs.block_pose[0].copy(),
                truth_block=None if truth is None else np.asarray(truth["block_pose"], dtype=np.float64),
                correction_active=result.active, correction_s=result.seconds, correction_loss=result.loss,
                correction_target=result.target_pose.copy(), correction_rate=result.target_rate.copy(),
                stalled=stalled,
                q_twin=obs.joint_pos[0].copy(), q_robot=self.streamer.robot_q(), shown_at_ns=tracker.last_shown_at_ns,
                action=action[0].copy(),
                coverage=float(info["coverage"][0]),
            )
            self.records.append(record)
            if self.truth is not None:
                self._alignment.update(self.records, self.truth.history)
            if self.on_step is not None:
                self.on_step(record, frames, obs, info)
            if self.state_saver is not None:
                self.state_saver.after_step(self.twin, k, seed, steps)
            if reason:
                log.error("episode %d: the twin diverged (%s): the robot is told to stop and hold", k, reason)
                held = self._stop_and_hold(f"twin diverged: {reason}")
                self.counters["divergences"] += 1
                result = self._episode_result(k, seed, False, f"twin diverged: {reason}", steps, time.monotonic() - t_start)
                result["robot_held"] = held
                return result
            # while the pusher touches the twin's block or the loop waits for the images to agree with it,
            # the block is where the twin's own physics put it: such steps do not count
            done = success.update(float(info["coverage"][0]), tracker.confirmed)
            if done or truncated[0]:
                return self._episode_result(k, seed, done, "" if done else "time limit", steps,
                                            time.monotonic() - t_start)
            next_t += dt
            if cfg.real_time:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.counters["overruns"] += 1
                    if delay < -cfg.max_catch_up_s:
                        next_t = time.monotonic()

    def set_calibration(self, calibration) -> None:  # noqa: ANN001 - calibration.SetupCalibration
        """Use these camera poses from now on: the correction's renders and the frames the stream delivers."""
        self.calibration = calibration
        cams = {s: calibration.camera(s) for s in calibration.serials}
        self.corrector.set_cameras({s: (c.intrinsics, c.T_world_camera) for s, c in cams.items() if c.mount == "static"},
                                   wrist={s: (c.intrinsics, c.T_flange_camera) for s, c in cams.items() if c.mount == "wrist"})
        if getattr(self, "camera", None) is not None:
            self.camera.calibration = calibration

    def use_scene(self, data) -> None:  # noqa: ANN001 - twin.scene_file.SceneData
        """Render the twin with a scanned scene and find its block by the scanned colours."""
        from .scene_setup import use_scene

        use_scene(self, data)

    def scan(self, seed: int) -> None:
        """Scan the workspace's appearance (the block at rest, the arm at the robot's joints)."""
        from .scene_setup import scan_workspace

        scan_workspace(self, seed)

    def _measure_block(self, seed: int) -> None:
        """Measure the real block's dimensions and give it to the twin (``scene_setup.measure_block``)."""
        from .scene_setup import measure_block

        measure_block(self, seed)

    def _stop_and_hold(self, reason: str, timeout_s: float = 2.0) -> bool:
        """Stop the robot; True once it reports STOPPED (holding). Then open a new session so the next
        episode can move it again (it resumes only from its held pose)."""
        from robot_bridge import BridgeError, Mode

        self.streamer.stop_robot(reason)
        try:
            self.streamer.client.wait_for_state(lambda st: st.mode == Mode.STOPPED, timeout_s)
            held = True
        except BridgeError:
            held = False
        self.streamer.reconnect()
        return held

    def _step_twin(self, action: np.ndarray, result: CorrectionResult):
        """One twin step with the visual forces of ``result``; the robot is sent the twin's new joints."""
        q_before = self.twin.joint_positions()[0]
        before = self.twin.observe()
        out = self.twin.step(action, block_springs=self.corrector.springs([result]))
        self.streamer.set_path(q_before, out[0].joint_pos[0], self.twin.dt)
        self.tracker.after_twin_step(before, out[0], self._robot_lag_s)
        return out

    def _episode_result(self, k: int, seed: int, success: bool, reason: str, steps: int, seconds: float) -> dict[str, Any]:
        truth = None if self.truth is None else self.truth.poll()
        result: dict[str, Any] = {"episode": k, "seed": seed, "success": success, "reason": reason, "steps": steps,
                                  "time_s": round(seconds, 2),
                                  "coverage": float(self.twin.score(self.twin.observe())["coverage"][0])}
        if truth is not None:
            from ..pusht import coverage

            result["truth_coverage"] = float(coverage(self.task_block, np.asarray(truth["block_pose"])[None],
                                                      self.twin.goal_pose)[0])
            result["truth_success"] = result["truth_coverage"] >= self.config.twin.goal.success_coverage
        if steps > 0:  # the robot followed the twin in this episode: how well (reset at its start)
            lag, lag_rms = self.streamer.follower_lag()
            result["follower"] = {"lag_ms": lag * 1e3, "tracking_rms_rad": self.streamer.tracking_rms_rad(),
                                  "tracking_rms_rad_lag_compensated": lag_rms, "samples": self.streamer.tracking_samples()}
        log.info("episode %d (seed %d): %s%s in %d steps", k, seed, "success" if success else "failure",
                 f" ({reason})" if reason else "", steps)
        return result

    # ------------------------------------------------------------------ summary
    def aligned_errors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Twin block error against the truth *at the moment the twin's state is meant for* (see
        ``TruthAlignment``): per step, the record index, position error [m] and yaw error [rad]. None
        without a truth channel."""
        if self.truth is None:
            return None
        self._alignment.update(self.records, self.truth.history, recent=None)  # the last records
        a = self._alignment
        return (np.array(a.index), np.array(a.pos_m), np.array(a.yaw_rad)) if a.pos_m else None

    def summary(self) -> dict[str, Any]:
        """Per episode results and the run's figures (``metrics.run_summary``)."""
        from .metrics import run_summary

        return run_summary(self)
