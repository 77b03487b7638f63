"""Visual-force correction: render the twin, compare with calibrated camera frames, and turn the
image residual into a wrench that pulls the twin's block to where the real one is.

Per frame set (one twin world):

1. **Render** the dynamic Gaussians (block, pusher, robot) of the twin's current state for every
   calibrated camera, composited over the cached render of the static table.
2. **Compare** with the observation: a robust (Huber) loss on RGB, plus depth where the frame has it,
   over the pixels not masked out.
3. **Estimate one planar rigid motion** (dx, dy, dyaw) of the block's Gaussians that best explains the
   images: Gauss-Newton on the robust loss (``CorrectionConfig.solver``), its Jacobian by finite
   differences of renders with the block moved by 1 mm and 0.5 degree: the three moves in one batched
   render per camera, of only the pixels the block can reach within the solve (elsewhere the Jacobian is
   zero); a second iteration, only when the first moved the block by more than a millimetre or half a
   degree, reuses that Jacobian and costs one such render.
   The robot, the pusher and the table are never corrected (they carry no displacement). A deadband
   follows: the block's visually observed pose is its current pose moved by that motion. (The former
   solver, ``solver="adam"``, moves every block Gaussian by a few Adam steps and fits the motion to their
   displacements: its steps are of fixed size whatever the error, so it reads a 1 mm offset as 2 mm and
   a 4 mm offset as 3.5 mm, with a spurious turn of half a degree; Gauss-Newton reads them as 1.0 and 3.8 mm.)
5. Pull the block there with a **visual-force wrench** about its centre of mass: a critically damped
   planar spring-damper towards the observed pose, with the twin's own Coulomb friction compensated,
   clamped to a maximum force and torque. The wrench is evaluated at every physics substep (so it is
   stable at any camera rate) and added to the physics step's external wrench input.

Use: ``result = corrector.correct(frames, env)`` then ``env.step(actions, block_springs=corrector.springs([result]))``. Late frames, empty frame sets and cameras
without calibration are skipped and counted; a frame whose size does not match its calibration is an
error. Non-finite or missing depth pixels are masked and counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from calibration import CameraIntrinsics

from .._physics import BlockSprings
from ..transforms import wrap_angle
from ..config import SpringGains
from ..gaussian_scene import GaussianScene
from ..render.scene import SceneRenderer
from ..rig import FLANGE_LINK
from ._solvers import _MotionSolvers, _block_radius, _huber, block_planar_pose, frame_time_ns

__all__ = ["CorrectionConfig", "CorrectionResult", "VisualCorrector", "block_planar_pose"]

@dataclass(frozen=True)
class CorrectionConfig:
    """Gains, iterations, loss weights and limits of the visual-force correction."""

    #: How the block's motion is estimated from a frame set: "gauss_newton" (a planar rigid motion,
    #: Gauss-Newton on the robust loss) or "adam" (per-Gaussian Adam steps, then a rigid fit).
    solver: str = "gauss_newton"
    #: Gauss-Newton: at most this many iterations; after the first, only while the last step moved the
    #: block more than ``gn_stop_m`` or ``gn_stop_rad``. Finite-difference steps of the Jacobian [m],
    #: [rad]. Each iteration's step is clamped to ``reach_m`` and ``gn_max_step_rad``: far from the
    #: truth the linearisation only says which way.
    gn_iterations: int = 2
    gn_stop_m: float = 0.001
    gn_stop_rad: float = float(np.deg2rad(0.5))
    gn_fd_m: float = 0.001
    gn_fd_rad: float = float(np.deg2rad(0.5))
    gn_max_step_rad: float = float(np.deg2rad(5.0))
    #: Adam: iterations on the block's Gaussian means per frame set, and the first step [m]; each
    #: further step halves, so the estimate reaches ~2 step_m and resolves step_m / 2^(iterations-1).
    #: ``2 step_m`` is also the reach within which an estimate counts as a measurement (``reach_m``, either solver).
    iterations: int = 3
    step_m: float = 0.004
    rgb_weight: float = 1.0
    #: Match each frame's brightness to the render (one gain per colour channel) before comparing.
    exposure_compensation: bool = True
    #: Weight of the depth residual, per metre of depth error.
    depth_weight_per_m: float = 10.0
    huber_delta: float = 0.1
    #: The visual-force spring (frequency, friction compensation, force and torque limits).
    spring: SpringGains = field(default_factory=SpringGains)
    deadband_m: float = 0.0005
    deadband_rad: float = float(np.deg2rad(0.2))
    #: Low-pass factor of the observed block velocity (0 = no velocity feed-forward, 1 = no filtering);
    #: the estimate resets after a gap longer than ``rate_max_gap_s``.
    rate_filter: float = 0.5
    rate_max_gap_s: float = 0.5
    #: The observed velocity is clamped to what a pushed block can do [m/s], [rad/s].
    max_rate_m_s: float = 0.3
    max_rate_rad_s: float = 2.0
    #: How a measurement of the past (the frames' moment) is carried on to the twin's present: "rate"
    #: (at the observed velocity) or "twin" (the same offset applied to the twin's current pose, i.e. the
    #: twin's own physics predicts the motion in between).
    carry: str = "rate"
    #: Frame sets older than this [s] are skipped as late.
    max_frame_age_s: float = 0.25
    #: Fewer visible block Gaussians than this: no correction (block occluded or out of view).
    min_visible_gaussians: int = 30

    @property
    def reach_m(self) -> float:
        """How far [m] an estimate counts as a measurement (``2 step_m``)."""
        return 2.0 * self.step_m

    def __post_init__(self) -> None:
        if self.carry not in ("rate", "twin"):
            raise ValueError(f"carry must be 'rate' or 'twin', got {self.carry!r}")
        if self.solver not in ("gauss_newton", "adam"):
            raise ValueError(f"solver must be 'gauss_newton' or 'adam', got {self.solver!r}")
        if self.gn_iterations < 1 or not (self.gn_fd_m > 0 and self.gn_fd_rad > 0 and self.gn_max_step_rad > 0):
            raise ValueError("gn_iterations must be >= 1 and the finite-difference and step limits > 0")
        if self.iterations < 1 or not self.step_m > 0:
            raise ValueError("iterations must be >= 1 and step_m > 0")
        for name in ("rgb_weight", "depth_weight_per_m", "deadband_m", "deadband_rad"):
            if getattr(self, name) < 0:
                raise ValueError(f"CorrectionConfig.{name} must be >= 0")


@dataclass
class CorrectionResult:
    """Outcome of one frame set for one world. ``target_pose`` (x [m], y [m], yaw [rad], world frame)
    is where the images put the block; ``active`` is False when the frame set was skipped."""

    target_pose: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    #: Where the images put the block at the moment they were taken (before carrying it on).
    observed_pose: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    #: Estimated rate of the observed pose (m/s, m/s, rad/s) from successive frame sets.
    target_rate: np.ndarray = field(default_factory=lambda: np.zeros(3))
    active: bool = False
    delta_xy_m: np.ndarray = field(default_factory=lambda: np.zeros(2))
    delta_yaw_rad: float = 0.0
    loss: float = float("nan")
    cameras_used: tuple[str, ...] = ()
    visible_gaussians: int = 0
    skipped: str = ""
    seconds: float = 0.0


class VisualCorrector(_MotionSolvers):
    """Visual forces for one world of a ``PushTEnv`` from calibrated frame sets.

    Args:
        scene: the twin's Gaussians.
        config: gains and limits.
        device: torch device for rendering (CUDA renders with gsplat).
    """

    def __init__(self, scene: GaussianScene, config: CorrectionConfig = CorrectionConfig(), device: str = "cpu") -> None:
        self.scene = scene
        self.config = config
        self.device = torch.device(device)
        #: draws the twin for the calibrated cameras (the correction compares its renders with frames)
        self.renderer = SceneRenderer(scene, self.device)
        self.counters: Counter[str] = Counter()
        self._last_target: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # world -> (time ns, pose, rate)
        self._vignetting: dict[str, float] = {}  # serial -> scanned k (frames are divided by 1 - k r^2)
        self._falloffs: dict[tuple, torch.Tensor] = {}  # (serial, H, W, k) -> 1 - k r^2 [H, W, 1]
        self._wrist: dict[str, np.ndarray] = {}  # serial -> T_flange_camera of the wrist cameras

    def set_block_shape(self, shape) -> None:  # noqa: ANN001 - twin.pusht.TShape
        """Give the scene's block other dimensions (e.g. the measured real block's); motion history is
        dropped."""
        self.renderer.set_block_shape(shape)
        self._last_target.clear()

    def apply_scene(self, data) -> None:  # noqa: ANN001 - twin.scene_file.SceneData
        """Render the twin with a scanned scene's Gaussians, and undo each scanned camera's vignetting on its
        frames before comparing (``SceneData.cameras``)."""
        self.scene.apply_scene(data)
        self.renderer.reload_scene()
        self._vignetting = {s: float(c.get("vignetting", 0.0)) for s, c in data.cameras.items()}
        self._last_target.clear()

    def set_cameras(self, cameras: Mapping[str, tuple[CameraIntrinsics, np.ndarray]],
                    wrist: Mapping[str, tuple[CameraIntrinsics, np.ndarray]] | None = None) -> None:
        """Calibrated cameras: serial -> (intrinsics, ``T_world_camera`` [4, 4]) (see `SceneRenderer`), and wrist
        cameras: serial -> (intrinsics, ``T_flange_camera`` [4, 4], the hand-eye calibration), rendered from the
        flange's pose of the state they are compared with."""
        self._wrist = {s: np.asarray(T, dtype=np.float64) for s, (_, T) in (wrist or {}).items()}
        self.renderer.set_cameras({**cameras, **(wrist or {})})  # a wrist camera's pose here is a placeholder

    @property
    def camera_serials(self) -> tuple[str, ...]:
        return self.renderer.camera_serials

    def render(self, body_poses: np.ndarray, link_poses: np.ndarray | None, serials: tuple[str, ...] | None = None,
               block_offset: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """`SceneRenderer.render` of one world (wrist cameras posed by ``link_poses``' flange)."""
        moving = {s: (np.asarray(link_poses)[FLANGE_LINK] @ T)[None] for s, T in self._wrist.items()
                  if serials is None or s in serials}
        return self.renderer.render(body_poses, link_poses, serials, block_offset, camera_poses=moving or None)

    def occluder_masks(self, body_poses: np.ndarray, link_poses: np.ndarray | None,
                       min_alpha: float = 0.5) -> dict[str, np.ndarray]:
        """`SceneRenderer.occluder_masks` of one world state, for the fixed cameras."""
        masks = self.renderer.occluder_masks(body_poses, link_poses, min_alpha)
        return {s: m for s, m in masks.items() if s not in self._wrist}

    # ------------------------------------------------------------------ correction
    def correct(self, frames: Mapping, env, world: int = 0, now_ns: int | None = None,
                ignore_masks: Mapping[str, np.ndarray] | None = None,
                seen_state: tuple[np.ndarray, np.ndarray | None] | None = None,
                target_time_ns: int | None = None, carried: np.ndarray | None = None) -> CorrectionResult:
        """One correction from a frame set (``twin.cameras.FrameSet`` or serial -> ``CameraFrame``).

        Returns where the images put ``world``'s block; see ``CorrectionResult``.
        ``ignore_masks``: serial -> bool [H, W], True where pixels must not count.
        ``seen_state``: the twin's (body poses [2, 7], link poses [9, 4, 4]) at the moment the frames
        show, when the twin runs ahead of the cameras (latency compensation). Default: the current state.
        ``target_time_ns``: the moment (monotonic ns) the twin's current state stands for; the observed
        pose is carried on to it at the observed velocity. Default: now.
        ``carried``: with ``carry="twin"``, the twin's block motion (dx [m], dy [m], dyaw [rad]) since the
        frames' moment that the real block shares (its pushes; not the visual forces' own pull, which
        would count a measured offset again in every frame until the frames show it corrected).
        Default: all of the twin's motion since ``seen_state``.
        """
        t0 = time.perf_counter()
        cfg = self.config
        zero = CorrectionResult()
        if not self.renderer.camera_serials:
            raise RuntimeError("VisualCorrector.set_cameras() must be called first")
        if frames is None or len(frames) == 0:
            self.counters["empty_frame_set"] += 1
            zero.skipped = "empty frame set"
            return zero
        now = time.monotonic_ns() if now_ns is None else now_ns
        targets = {}
        for serial in frames:
            frame = frames[serial]
            if serial not in self.renderer.camera_serials:
                self.counters["unknown_camera"] += 1
                continue
            intr = self.renderer.camera(serial)[0]
            if frame.rgb.shape[:2] != (intr.height, intr.width):
                raise ValueError(f"camera {serial}: frame {frame.rgb.shape[1]}x{frame.rgb.shape[0]} does not match "
                                 f"its calibration {intr.width}x{intr.height}")
            if (now - frame.host_time_ns) / 1e9 > cfg.max_frame_age_s:
                self.counters["late_frame"] += 1
                continue
            targets[serial] = self._target(serial, frame, None if ignore_masks is None else ignore_masks.get(serial))
        if not targets:
            zero.skipped = "no usable camera frame"
            self.counters["skipped_frame_sets"] += 1
            return zero

        current = env.body_poses()[world]
        if seen_state is None:
            poses = current
            links = env.link_poses()[world] if self.scene.config.include_robot else None
        else:
            poses, links = seen_state
        solve = self._solve_gauss_newton if cfg.solver == "gauss_newton" else self._solve_adam
        dxy, dyaw, loss_value, visible = solve(poses, links, targets)
        result = CorrectionResult(loss=loss_value, cameras_used=tuple(targets), visible_gaussians=visible)
        if visible < cfg.min_visible_gaussians:
            self.counters["block_not_visible"] += 1
            result.skipped = f"only {visible} block Gaussians visible"
            result.seconds = time.perf_counter() - t0
            return result
        if np.linalg.norm(dxy) < cfg.deadband_m:
            dxy = np.zeros(2)
        if abs(dyaw) < cfg.deadband_rad:
            dyaw = 0.0
        result.delta_xy_m, result.delta_yaw_rad = dxy, dyaw
        # Inside its reach the estimate is a measurement: the block was at seen pose + motion when the
        # frames were taken, and successive measurements give its velocity, which carries the target
        # on to ``target_time_ns``. A saturated estimate only says which way: it pulls the current pose.
        reach = cfg.reach_m
        trusted = np.linalg.norm(dxy) < 0.5 * reach and abs(dyaw) * _block_radius(self.scene) < 0.5 * reach
        base = poses if trusted else current
        t_frame = frame_time_ns(frames, targets)
        observed = block_planar_pose(base) + np.array([dxy[0], dxy[1], dyaw])
        result.target_rate = self._rate(world, t_frame, observed, trusted)
        result.observed_pose = observed
        ahead_s = max(0.0, ((now if target_time_ns is None else target_time_ns) - t_frame) / 1e9) if trusted else 0.0
        if trusted and cfg.carry == "twin":
            # the twin's own motion since the frames' moment carries the measurement on
            if carried is None:
                carried = block_planar_pose(current) - block_planar_pose(base)
            result.target_pose = observed + np.asarray(carried, dtype=np.float64)
        else:
            result.target_pose = observed + result.target_rate * min(ahead_s, cfg.rate_max_gap_s)
        result.active = True
        result.seconds = time.perf_counter() - t0
        self.counters["corrections"] += 1
        return result

    def _first_render(self, poses: np.ndarray, links: np.ndarray | None, targets: dict, offset: torch.Tensor):
        """Render with the block's Gaussians moved by ``offset`` [G, 3] (a leaf tensor that may need
        gradients), fitting each camera's exposure gain on it; returns (renders, loss tensor)."""
        renders = self.render(poses, links, tuple(targets), offset)
        if self.config.exposure_compensation:
            for serial in targets:
                if serial not in self._wrist:  # the table's cached render is a fixed camera's
                    self._estimate_gain(serial, renders[serial], targets[serial])
        return renders, sum(self._loss(renders[s], targets[s]) for s in targets)

    def _residual_masks(self, render: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The pixels whose residuals count (fixed across one solve so that residual vectors line up)."""
        masks = {"rgb": target["valid"]}  # [H, W, 1] each
        if "depth" in target and self.config.depth_weight_per_m > 0:
            masks["depth"] = target["depth_valid"] & (render[2] > 0.5)
        return masks

    def _residuals(self, render: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: dict[str, torch.Tensor],
                   masks: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The raw residuals ``a`` of ``_loss`` per group (colour difference, weighted depth difference),
        flattened and zero outside the masks, each with its scale (``_loss`` = sum of scale^2 * huber(a))."""
        cfg = self.config
        color, depth, _ = render
        obs = target["rgb"] * target["gain"] if "gain" in target else target["rgb"]
        v = masks["rgb"]
        groups = [(((color - obs) * v).reshape(-1), torch.sqrt(cfg.rgb_weight / (3 * v.sum().clamp_min(1))))]
        if "depth" in masks:
            dv = masks["depth"]
            err = cfg.depth_weight_per_m * (depth - target["depth"]) * dv
            groups.append((err.reshape(-1), torch.rsqrt(dv.sum().clamp_min(1).float())))
        return groups

    def residual(self, frames: Mapping, body_poses: np.ndarray, link_poses: np.ndarray | None) -> float:
        """The image loss of one world state (``body_poses`` [2, 7], ``link_poses`` [9, 4, 4]) against the
        calibrated cameras' frames of ``frames`` (no gradient): lower is a better explanation."""
        serials = tuple(s for s in frames if s in self.renderer.camera_serials)
        if not serials:
            return float("nan")
        targets = {s: self._target(s, frames[s], None) for s in serials}
        with torch.no_grad():
            renders = self.render(body_poses, link_poses, serials)
            return float(sum(self._loss(renders[s], targets[s]) for s in serials))

    def _rate(self, world: int, t_ns: int, pose: np.ndarray, trusted: bool) -> np.ndarray:
        """Filtered rate of the observed pose from the previous frame set of this world."""
        cfg = self.config
        rate = np.zeros(3)
        last = self._last_target.get(world)
        if not trusted:
            self._last_target.pop(world, None)
            return rate
        if last is not None and cfg.rate_filter > 0:
            gap = (t_ns - last[0]) / 1e9
            if 1e-3 < gap <= cfg.rate_max_gap_s:
                d = pose - last[1]
                d[2] = wrap_angle(d[2])
                rate = cfg.rate_filter * d / gap + (1 - cfg.rate_filter) * last[2]
                speed = float(np.linalg.norm(rate[:2]))
                if speed > cfg.max_rate_m_s:
                    rate[:2] *= cfg.max_rate_m_s / speed
                rate[2] = float(np.clip(rate[2], -cfg.max_rate_rad_s, cfg.max_rate_rad_s))
        self._last_target[world] = (t_ns, pose.copy(), rate)
        return rate

    def forget_motion(self, world: int = 0) -> None:
        """Drop the velocity memory of ``world`` (after its block was re-localised or reset)."""
        self._last_target.pop(world, None)

    def springs(self, results: list[CorrectionResult]) -> BlockSprings:
        """The visual-force springs of one correction result per world, for ``PushTEnv.step``."""
        return BlockSprings(
            target=np.array([r.target_pose for r in results]),
            active=np.array([r.active for r in results], dtype=bool),
            gains=self.config.spring,
            target_rate=np.array([r.target_rate if r.active else np.zeros(3) for r in results]),
        )

    def _target(self, serial: str, frame, ignore: np.ndarray | None) -> dict[str, torch.Tensor]:
        h, w = frame.rgb.shape[:2]
        rgb = torch.as_tensor(np.asarray(frame.rgb), device=self.device).float() / 255.0
        if self._vignetting.get(serial):
            rgb = rgb / self._falloff(serial, h, w)
        valid = torch.ones((h, w, 1), dtype=torch.bool, device=self.device)
        if ignore is not None:
            ignore = np.asarray(ignore, dtype=bool)
            if ignore.shape != (h, w):
                raise ValueError(f"camera {serial}: ignore mask {ignore.shape} does not match the frame {(h, w)}")
            valid &= ~torch.as_tensor(ignore, device=self.device)[..., None]
        target = {"rgb": rgb, "valid": valid}
        if frame.depth_m is not None:
            depth = np.asarray(frame.depth_m, dtype=np.float32)
            finite = np.isfinite(depth)
            if not finite.all():
                self.counters["nonfinite_depth_pixels"] += int((~finite).sum())
            ok = finite & (depth > 0)
            target["depth"] = torch.as_tensor(np.where(ok, depth, 0.0), device=self.device)[..., None]
            target["depth_valid"] = valid & torch.as_tensor(ok, device=self.device)[..., None]
        return target

    def _falloff(self, serial: str, h: int, w: int) -> torch.Tensor:
        """The scanned vignetting of a camera as an image [H, W, 1] (cached)."""
        from .scan import vignette_map

        key = (serial, h, w, self._vignetting[serial])
        if key not in self._falloffs:
            self._falloffs[key] = vignette_map(h, w, self._vignetting[serial]).to(self.device).clamp_min(0.2)
        return self._falloffs[key]

    def _estimate_gain(self, serial: str, render, target: dict[str, torch.Tensor]) -> None:
        """Exposure and white balance drift: one gain per colour channel that maps the observation onto
        the render, fitted (least squares) on the pixels where only the static table is seen."""
        static_color, _, static_alpha = self.renderer.static(serial)
        with torch.no_grad():
            table_only = ((render[0] - static_color).abs().amax(dim=-1, keepdim=True) < 1e-3) & (static_alpha > 0.5)
            m = table_only & target["valid"]
            if int(m.sum()) < 100:
                return
            o = target["rgb"] * m
            gain = (static_color * o).sum(dim=(0, 1)) / (o * o).sum(dim=(0, 1)).clamp_min(1e-6)
            target["gain"] = gain.clamp(0.5, 2.0)

    def _loss(self, render: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Robust (Huber) loss of a render against a frame: the mean over valid pixels of the colour
        term plus, where the frame has depth and the render is opaque, the mean depth term."""
        groups = self._residuals(render, target, self._residual_masks(render, target))
        return sum(scale * scale * _huber(a, self.config.huber_delta).sum() for a, scale in groups)
