"""The simulated workspace: the stand-in for a real Franka, real cameras and a real T block.

It runs its own ground-truth physics of the PushT workspace (the twin's code with its own parameters),
with a **domain gap the twin is not told** (friction, block mass and size, pusher size, actuation lag,
drawn per run from configured ranges). Towards the twin it speaks only the protocols real hardware
speaks:

- **robot**: a ``robot_bridge.RobotServer`` with the simulated Franka follower (``SimBackend``); the
  follower's measured joints drive the truth robot, whose pusher pushes the truth block;
- **cameras**: frames rendered from the truth with a *different* Gaussian sampling and **its own look**
  (``sim_workspace.appearance``: the block's colour and pattern, a textured table, white links with dark
  joints, uneven light, each camera's white balance and vignetting), sensor noise, exposure changes and
  depth holes, published on the camera stream (``twin.cameras.FramePublisher``) from the first
  ``camera_count`` cameras of the rig (and, with ``wrist_camera``, a camera on the arm's flange), with a
  calibration file written to disk that is **off by a drawn extrinsic and focal-length error**, as a
  ChArUco (or hand-eye) calibration is;
- **disturbances**: at random times "a person" nudges the block by a few centimetres;
- **truth** (block pose, robot joints) goes out on a separate PUB channel that only tests, benchmarks
  and the metrics writer may read; the twin never does;
- **control**: a REQ/REP channel on which the deploy job asks for a new episode (the truth block is
  placed at a seeded pose), as an operator would be asked on hardware.

Time is real time; the truth physics steps at ``physics_rate_hz``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgpack
import numpy as np

from twin.config import TwinConfig
from twin.gaussian_scene import GaussianSceneConfig
from twin.rig import DEFAULT_RIG, DEFAULT_WRIST_CAMERA, FLANGE_LINK, VirtualCameraConfig
from .appearance import (Appearance, AppearanceGapConfig, CalibrationErrorConfig, CameraPhotometry, apply_appearance,
                         draw_appearance, draw_calibration_error, look_generator)
from .views import SensorNoiseConfig

__all__ = ["DomainGapConfig", "DisturbanceConfig", "WorldConfig", "SimulatedWorld", "WORLD_PROTOCOL_VERSION",
           "draw_truth", "TruthRig"]

log = logging.getLogger(__name__)
WORLD_PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class DomainGapConfig:
    """Ranges the truth's parameters are drawn from, per run (uniform)."""

    friction: tuple[float, float] = (0.35, 0.65)
    block_mass_kg: tuple[float, float] = (0.18, 0.35)
    #: Bar and stem dimensions change by up to this much [m] (each independently).
    block_size_delta_m: float = 0.003
    pusher_radius_delta_m: float = 0.002
    actuation_lag_s: tuple[float, float] = (0.005, 0.03)


@dataclass(frozen=True)
class DisturbanceConfig:
    """'A person' nudges the block: a push of a few centimetres at random times."""

    enabled: bool = True
    #: Mean time between nudges [s] (exponential); the first comes no sooner than ``min_start_s``.
    mean_interval_s: float = 15.0
    min_start_s: float = 3.0
    distance_m: tuple[float, float] = (0.03, 0.05)
    duration_s: float = 0.3


@dataclass(frozen=True)
class WorldConfig:
    """``realsim world``: the simulated workspace."""

    seed: int = 0
    #: The nominal workspace (what the twin is told); the truth differs by ``gap``.
    twin: TwinConfig = field(default_factory=TwinConfig)
    gap: DomainGapConfig = field(default_factory=DomainGapConfig)
    disturbances: DisturbanceConfig = field(default_factory=DisturbanceConfig)
    #: What the workspace looks like, and how far the calibration handed to the twin is off.
    appearance: AppearanceGapConfig = field(default_factory=AppearanceGapConfig)
    calibration_error: CalibrationErrorConfig = field(default_factory=CalibrationErrorConfig)
    #: The rig; the first ``camera_count`` (1-3 by default) publish frames.
    cameras: tuple[VirtualCameraConfig, ...] = DEFAULT_RIG
    camera_count: int = 1
    #: A wrist camera on the arm's flange (``wrist``, mount "hand") publishes frames too; the calibration file
    #: holds its hand-eye pose ``T_flange_camera`` (off by the same kind of drawn error).
    wrist_camera: bool = False
    wrist: VirtualCameraConfig = DEFAULT_WRIST_CAMERA
    camera_rate_hz: float = 10.0
    noise: SensorNoiseConfig = field(default_factory=lambda: SensorNoiseConfig(exposure_gain_range=(0.9, 1.1)))
    #: A different sampling of the same bodies than the twin's default.
    gaussians: GaussianSceneConfig = field(default_factory=lambda: GaussianSceneConfig(jitter=0.5, seed=7))
    physics_rate_hz: float = 20.0
    robot_address: str = "tcp://127.0.0.1:5557"
    camera_endpoint: str = "tcp://127.0.0.1:5560"
    truth_endpoint: str = "tcp://127.0.0.1:5561"
    control_endpoint: str = "tcp://127.0.0.1:5562"
    #: Where the virtual rig's calibration file is written ("" = not written).
    calibration_path: str = ""

    def __post_init__(self) -> None:
        if not (self.camera_rate_hz > 0 and self.physics_rate_hz > 0):
            raise ValueError("camera_rate_hz and physics_rate_hz must be > 0")
        if not 1 <= self.camera_count <= len(self.cameras):
            raise ValueError(f"camera_count must be in [1, {len(self.cameras)}] (the rig's cameras), got {self.camera_count}")
        if any(c.mount != "world" for c in self.cameras):
            raise ValueError("the simulated workspace's cameras are fixed (mount 'world'); the wrist camera is `wrist`")
        if self.wrist.mount != "hand":
            raise ValueError("the wrist camera must be mounted on the 'hand'")
        if self.wrist.serial in {c.serial for c in self.cameras}:
            raise ValueError(f"the wrist camera's serial {self.wrist.serial!r} is taken by a fixed camera")

    @property
    def active_cameras(self) -> tuple[VirtualCameraConfig, ...]:
        """The cameras that publish frames."""
        return self.cameras[: self.camera_count]

    def hands_off(self) -> "WorldConfig":
        """This world with nobody nudging the block (scans, measurements, evaluations)."""
        return replace(self, disturbances=replace(self.disturbances, enabled=False))


def draw_truth(config: WorldConfig, rng: np.random.Generator) -> tuple[TwinConfig, float]:
    """The truth's workspace (the nominal one with the domain gap applied) and the actuation lag [s]."""
    g, tw = config.gap, config.twin
    b = tw.block
    d = g.block_size_delta_m
    block = replace(
        b,
        friction=float(rng.uniform(*g.friction)),
        mass_kg=float(rng.uniform(*g.block_mass_kg)),
        bar_length_m=b.bar_length_m + float(rng.uniform(-d, d)),
        bar_width_m=b.bar_width_m + float(rng.uniform(-d, d)),
        stem_width_m=b.stem_width_m + float(rng.uniform(-d, d)),
        stem_length_m=b.stem_length_m + float(rng.uniform(-d, d)),
    )
    physics = replace(
        tw.physics,
        pusher_radius_m=tw.physics.pusher_radius_m + float(rng.uniform(-g.pusher_radius_delta_m, g.pusher_radius_delta_m)),
        table_friction=block.friction,
        substeps=max(1, round(tw.physics.substeps * tw.control_hz / config.physics_rate_hz)),
    )
    truth = replace(tw, num_worlds=1, block=block, physics=physics, control_hz=config.physics_rate_hz,
                    max_episode_steps=10**9, device="cpu")
    return truth, float(rng.uniform(*g.actuation_lag_s))


@dataclass
class TruthRig:
    """The truth of one run: its workspace, actuation lag [s], look, the calibration the twin is handed
    (serial -> (intrinsics, ``T_world_camera``; a wrist camera's ``T_flange_camera``)), the renderer of the
    truth's cameras (true poses), each camera's photometry, and the wrist camera's true ``T_flange_camera``."""

    truth: TwinConfig
    lag_s: float
    look: Appearance
    calibrated_cameras: dict
    renderer: object
    photometry: dict = field(default_factory=dict)
    wrist: dict = field(default_factory=dict)

    @staticmethod
    def draw(config: WorldConfig, rng: np.random.Generator) -> "TruthRig":
        """Draw the run's truth (the physical gap from ``rng``; the look and the calibration error from a
        generator of their own seeded by ``config.seed``, so they leave the physical draws unchanged)."""
        from twin.gaussian_scene import GaussianScene
        from twin.render.scene import SceneRenderer

        truth, lag = draw_truth(config, rng)
        look_rng = look_generator(config.seed)
        cams = {c.serial: (c.intrinsics, c.T_world_camera) for c in config.active_cameras}
        look = draw_appearance(config.appearance, tuple(cams), look_rng)
        calibrated = draw_calibration_error(config.calibration_error, cams, look_rng)
        photometry, wrist = dict(look.cameras), {}
        if config.wrist_camera:  # its own draws: the fixed cameras' stand whether it is there or not
            w = config.wrist
            wrist_rng = np.random.default_rng((config.seed, 29, 1))
            wrist[w.serial] = w.T_mount_camera
            calibrated.update(draw_calibration_error(config.calibration_error, {w.serial: (w.intrinsics, w.T_mount_camera)},
                                                     wrist_rng))
            light = config.appearance.lighting
            gains, vignetting = wrist_rng.uniform(1 - light.white_balance, 1 + light.white_balance, 3), wrist_rng.uniform(*light.vignetting)
            if look.cameras:
                photometry[w.serial] = CameraPhotometry(tuple(float(g) for g in gains), float(vignetting))
            cams[w.serial] = (w.intrinsics, w.T_mount_camera)  # a placeholder: its pose comes with every render
        scene = GaussianScene(truth, config.gaussians)
        apply_appearance(scene, look, config.appearance.table, config.appearance.block)
        renderer = SceneRenderer(scene)
        renderer.set_cameras(cams)
        return TruthRig(truth, lag, look, calibrated, renderer, photometry, wrist)

    def frames(self, body_poses: np.ndarray, link_poses: np.ndarray, config: WorldConfig, rng: np.random.Generator,
               with_poses: bool = True) -> dict:
        """What the cameras send of a truth state (``body_poses`` [2, 7], ``link_poses`` [9, 4, 4]): frames
        rendered with the true rig, the look, the noise, carrying the calibration file's intrinsics and,
        ``with_poses``, its ``T_world_camera`` (as a receiver with the calibration file sees them; a camera
        itself sends none)."""
        from .views import render_frames

        flange = np.asarray(link_poses)[FLANGE_LINK]
        cameras = config.active_cameras + ((config.wrist,) if self.wrist else ())
        frames = render_frames(self.renderer, body_poses, link_poses, cameras, config.noise, rng, photometry=self.photometry,
                               camera_poses={s: flange @ T for s, T in self.wrist.items()})

        def told_pose(serial: str) -> np.ndarray | None:  # a wrist camera's: the flange's pose and the hand-eye calibration
            T = self.calibrated_cameras[serial][1]
            return None if not with_poses else (flange @ T if serial in self.wrist else T)

        return {s: replace(f, intrinsics=self.calibrated_cameras[s][0], T_world_camera=told_pose(s)) for s, f in frames.items()}


class SimulatedWorld:
    """The simulated workspace; ``run(stop)`` serves until ``stop`` is set. See the module docstring."""

    def __init__(self, config: WorldConfig = WorldConfig()) -> None:
        import zmq

        from robot_bridge import RobotServer, ServerConfig
        from robot_bridge.backends.sim import SimBackend, SimFrankaConfig

        from twin.cameras import FramePublisher, PublisherConfig
        from twin.env import PushTEnv

        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.rig = rig = TruthRig.draw(config, self.rng)
        self.truth_config, self.lag_s, self.look = rig.truth, rig.lag_s, rig.look
        #: What the twin is told about the cameras (the truth's rig moved by the calibration error).
        self.calibrated_cameras = rig.calibrated_cameras
        self.truth = PushTEnv(self.truth_config)
        self.truth.reset(seed=config.seed)
        self.renderer = rig.renderer
        self.backend = SimBackend(SimFrankaConfig(q_init_rad=tuple(self.truth.q_start), command_lag_s=self.lag_s))
        self.server = RobotServer(self.backend, ServerConfig(bind_address=config.robot_address))
        self.publisher = FramePublisher(PublisherConfig(endpoint=config.camera_endpoint))
        self._ctx = zmq.Context.instance()
        self._truth_sock = self._ctx.socket(zmq.PUB)
        self._truth_sock.setsockopt(zmq.SNDHWM, 16)
        self._truth_sock.setsockopt(zmq.LINGER, 0)
        self._truth_sock.bind(config.truth_endpoint)
        self._control = self._ctx.socket(zmq.REP)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.setsockopt(zmq.MAXMSGSIZE, 4096)
        self._control.bind(config.control_endpoint)
        self.episode = 0
        self.nudges = 0
        self.frames_published = 0
        self._nudge: tuple[float, np.ndarray] | None = None  # (end time, target pose)
        self._next_nudge_t = 0.0
        self._t_s = 0.0
        self._cameras_paused_until = 0.0
        if config.calibration_path:
            self.write_calibration(config.calibration_path)

    # ------------------------------------------------------------------ set-up
    def write_calibration(self, path: str | Path) -> Path:
        """The calibration file of the virtual rig (what a real setup's calibration would hold: the truth
        off by the drawn calibration error)."""
        from calibration import CameraCalibration, SetupCalibration, save_calibration

        cams = {s: CameraCalibration(serial=s, intrinsics=intr, T_world_camera=T, intrinsics_source="manual",
                                     extrinsics_method="manual")
                for s, (intr, T) in self.calibrated_cameras.items() if s not in self.rig.wrist}
        for s in self.rig.wrist:  # a hand-eye calibration of the wrist camera
            intr, T = self.calibrated_cameras[s]
            cams[s] = CameraCalibration(serial=s, intrinsics=intr, mount="wrist", T_flange_camera=T,
                                        intrinsics_source="manual", extrinsics_method="hand_eye_eye_in_hand")
        return save_calibration(SetupCalibration(cameras=cams, setup="simulated workspace",
                                                 notes="virtual rig of `realsim world`"), path)

    # ------------------------------------------------------------------ serving
    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Serve in real time until ``stop`` is set (or ``duration_s`` passed)."""
        self.server.start()
        dt = 1.0 / self.config.physics_rate_hz
        cam_period = 1.0 / self.config.camera_rate_hz
        t0 = time.monotonic()
        next_step, next_frame = t0, t0
        self._schedule_nudge(0.0, first=True)
        try:
            while not stop.is_set():
                now = time.monotonic()
                if duration_s is not None and now - t0 > duration_s:
                    break
                self.server.check()  # a failed robot server ends the world loudly
                self._serve_control()
                self._t_s = now - t0
                if now >= next_step:
                    self._physics_step(now - t0)
                    next_step += dt
                    if now - next_step > 0.5:  # fell far behind: resynchronise rather than race
                        next_step = now + dt
                if now >= next_frame and now >= self._cameras_paused_until:
                    self._publish_frames()
                    next_frame += cam_period
                    if now - next_frame > 0.5:
                        next_frame = now + cam_period
                time.sleep(max(0.0, min(next_step, next_frame) - time.monotonic()))
        finally:
            self.close()

    def close(self) -> None:
        self.server.stop()
        self.publisher.close()
        self._truth_sock.close(0)
        self._control.close(0)

    def _physics_step(self, t_s: float) -> None:
        from twin.env import BlockSprings

        q = np.asarray(self.backend.read_state().q_rad, dtype=np.float64)
        springs = None
        if self._nudge is not None:
            end, target = self._nudge
            if t_s < end:
                springs = BlockSprings(target=target[None], active=np.array([True]))
            else:
                self._nudge = None
        elif self.config.disturbances.enabled and t_s >= self._next_nudge_t:
            self._start_nudge(t_s)
        obs, *_ = self.truth.step_joints(q[None], block_springs=springs)
        msg = {"v": WORLD_PROTOCOL_VERSION, "t_ns": time.monotonic_ns(), "episode": self.episode,
               "nudge_target": None if self._nudge is None else self._nudge[1].tolist(),
               "block_pose": obs.block_pose[0].tolist(), "q": q.tolist(), "pusher_xy": obs.pusher_xy[0].tolist(),
               "nudges": self.nudges, "nudging": self._nudge is not None}
        self._truth_sock.send(msgpack.packb(msg))

    def _publish_frames(self) -> None:
        # a camera sends no pose of its own: the receiver applies the (erroneous) calibration file
        frames = self.rig.frames(self.truth.body_poses()[0], self.truth.link_poses()[0], self.config, self.rng,
                                 with_poses=False)
        self.publisher.publish(frames)
        self.frames_published += 1

    def _schedule_nudge(self, t_s: float, first: bool = False) -> None:
        d = self.config.disturbances
        self._next_nudge_t = t_s + (d.min_start_s if first else 0.0) + float(self.rng.exponential(d.mean_interval_s))

    def _start_nudge(self, t_s: float, distance_m: float | None = None, direction_rad: float | None = None) -> None:
        d = self.config.disturbances
        pose = self.truth.observe().block_pose[0]
        ang = self.rng.uniform(-np.pi, np.pi) if direction_rad is None else direction_rad
        dist = self.rng.uniform(*d.distance_m) if distance_m is None else distance_m
        target = pose + np.array([dist * np.cos(ang), dist * np.sin(ang), 0.0])
        target[:2] = self.truth_config.workspace.clip_block_centres(target[:2])
        self._nudge = (t_s + d.duration_s, target)
        self.nudges += 1
        self._schedule_nudge(t_s)
        log.info("a person nudges the block by %.0f mm", dist * 1e3)

    def _serve_control(self) -> None:
        import zmq

        try:
            raw = self._control.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            req = msgpack.unpackb(raw, raw=False)
            if not isinstance(req, dict) or req.get("v") != WORLD_PROTOCOL_VERSION:
                raise ValueError("bad request")
            cmd = req.get("cmd")
            if cmd == "reset":
                seed = int(req.get("seed", 0))
                blocks = self.truth.sample_initial_blocks(np.array([seed]))
                self.truth.reset(seed=seed, options={"block_pose": blocks, "joint_pos": self.truth.joint_positions()})
                self.episode += 1
                self._nudge = None
                reply = {"v": WORLD_PROTOCOL_VERSION, "ok": True, "episode": self.episode}
            elif cmd == "nudge":  # the benchmark's 'person': a nudge of a given size (and direction), now
                distance = float(req["distance_m"])
                direction = req.get("direction_rad")
                direction = None if direction is None else float(direction)
                if not (np.isfinite(distance) and 0.0 <= distance <= 0.2):
                    raise ValueError(f"a nudge's distance_m must be in [0, 0.2], got {distance}")
                if direction is not None and not np.isfinite(direction):
                    raise ValueError(f"a nudge's direction_rad must be finite, got {direction}")
                self._start_nudge(self._t_s, distance_m=distance, direction_rad=direction)
                reply = {"v": WORLD_PROTOCOL_VERSION, "ok": True, "episode": self.episode}
            elif cmd == "pause_cameras":  # a camera stall, as when a cable is pulled
                self._cameras_paused_until = time.monotonic() + float(req["seconds"])
                reply = {"v": WORLD_PROTOCOL_VERSION, "ok": True, "episode": self.episode}
            elif cmd == "ping":
                reply = {"v": WORLD_PROTOCOL_VERSION, "ok": True, "episode": self.episode}
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            reply = {"v": WORLD_PROTOCOL_VERSION, "ok": False, "error": str(exc)}
        self._control.send(msgpack.packb(reply))
