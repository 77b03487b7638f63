"""Photometric refinement of static cameras' extrinsics against the twin's scene.

A board or hand-eye calibration leaves a camera a few millimetres and tenths of a degree off. The twin
knows the table's Gaussians and, from the arm's joints, where every link is: rendering the whole scene
(table, robot, pusher, block at given poses) from where a camera is said to be and comparing it with
what the camera saw measures how far off it is.

Per camera a correction ``D`` is estimated in the camera's own (OpenCV) frame, ``T_world_camera_refined
= T_world_camera @ D``, minimising the robust image loss of ``twin.perception.correction`` (Huber on RGB
after one exposure gain per channel, plus Huber on depth) over the pixels of all frame sets: Gauss-Newton
with Levenberg-Marquardt damping and Huber weights over the six twist coordinates of ``D``. Its
Jacobian [pixels, 6] comes from forward differences, the seven viewpoints of an iteration rendered in
one batched rasterization (moving the view matrix moves the Gaussians by the inverse correction);
reverse-mode gradients would give only its product with the residuals, and Adam's fixed-size steps
misjudge sub-pixel offsets. Coarse to fine: residuals are first compared on average-pooled images
(``CalibRefineConfig.levels``), which widens the basin to a few pixels.

Pixels count where the render at the current estimate is opaque, the frame is not saturated and (with
``mask_missing_depth``) has depth; masks and gains are refitted at every iteration and held within it.
The result is only as good as the Gaussians' likeness of what the cameras see (appearance, sampling,
sort order): where they differ, the fit is biased.
Units: metres, radians (results also in mm and degrees); poses 4x4 float64.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from calibration import CameraIntrinsics, as_pose, matrix_to_rotvec, pose_from_rotvec

from ..cameras import CameraFrame
from ..gaussian_scene import GaussianScene
from ..render import rasterization
from ..render.scene import composite_over
from ..rig import camera_tensors

__all__ = ["CalibRefineConfig", "ExtrinsicsRefinement", "refine_extrinsics", "twist_pose"]

#: ``progress(serial, pooling factor, iteration, loss)`` after every accepted Gauss-Newton step (the loss
#: before it, on that level's pooled images).
Progress = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class CalibRefineConfig:
    """Iterations, loss weights, masks and limits of the extrinsics refinement."""

    #: Average-pooling factors of the coarse-to-fine pyramid, coarse first (1 = full resolution).
    levels: tuple[int, ...] = (4, 2, 1)
    #: Gauss-Newton iterations per level at most; a level ends early when a step moves the camera less
    #: than ``stop_m`` and ``stop_rad``.
    iterations: int = 6
    stop_m: float = 2e-5
    stop_rad: float = 2e-5
    #: Forward-difference steps of the Jacobian [m], [rad].
    fd_m: float = 5e-4
    fd_rad: float = 5e-4
    #: Each step is clamped to these [m], [rad]; Levenberg-Marquardt damping (relative to the
    #: diagonal) starts at ``damping`` and grows tenfold while a step raises the loss.
    max_step_m: float = 0.01
    max_step_rad: float = float(np.deg2rad(1.0))
    damping: float = 1e-4
    #: Huber transition of the residuals (RGB in [0, 1]; depth after ``depth_weight_per_m``).
    huber_delta: float = 0.1
    rgb_weight: float = 1.0
    #: Weight of the depth residual per metre of depth error (0: RGB only).
    depth_weight_per_m: float = 10.0
    exposure_compensation: bool = True
    #: Frame pixels with a channel at or above this uint8 level are saturated and left out.
    saturation_level: int = 250
    #: Leave out pixels where the frame has no depth (holes, reflections, out of range).
    mask_missing_depth: bool = True
    #: Pixels count only where the render's alpha exceeds this (the modelled scene covers them).
    min_render_alpha: float = 0.99
    #: Fewer valid pixels than this (full resolution, all frame sets) is an error.
    min_valid_pixels: int = 500

    def __post_init__(self) -> None:
        if not self.levels or any(not isinstance(f, int) or f < 1 for f in self.levels):
            raise ValueError(f"levels must be pooling factors >= 1, got {self.levels}")
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        for name in ("stop_m", "stop_rad", "fd_m", "fd_rad", "max_step_m", "max_step_rad", "damping", "huber_delta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CalibRefineConfig.{name} must be > 0")
        if self.rgb_weight < 0 or self.depth_weight_per_m < 0:
            raise ValueError("rgb_weight and depth_weight_per_m must be >= 0")


@dataclass
class ExtrinsicsRefinement:
    """The refinement of one camera."""

    serial: str
    #: Refined and initial camera poses [4, 4] in the world frame (OpenCV axes, metres).
    T_world_camera: np.ndarray
    T_world_camera_initial: np.ndarray
    #: The correction [6] (tx, ty, tz [m], rotation vector rx, ry, rz [rad]) in the initial camera frame:
    #: ``T_world_camera = T_world_camera_initial @ twist_pose(delta)``.
    delta: np.ndarray
    #: How far the camera's centre moved [mm] and how far it turned [deg].
    translation_mm: float
    rotation_deg: float
    #: Robust image loss at full resolution (RGB and depth terms, each a mean over the valid pixels of
    #: all frame sets), before and after.
    loss_before: float
    loss_after: float
    #: The last level ended on a step below the stop thresholds or on a minimum (no step lowers the
    #: loss), not on its iteration limit.
    converged: bool
    #: Gauss-Newton iterations over all levels; valid pixels at the end; wall time [s].
    iterations: int
    valid_pixels: int
    seconds: float


def twist_pose(delta: np.ndarray) -> np.ndarray:
    """4x4 pose of a 6-vector (tx, ty, tz [m], rx, ry, rz [rad] rotation vector)."""
    d = np.asarray(delta, dtype=np.float64).reshape(6)
    return pose_from_rotvec(d[3:], d[:3])


def refine_extrinsics(scene: GaussianScene, frame_sets: Sequence[Mapping[str, CameraFrame]], body_poses: np.ndarray,
                      link_poses: np.ndarray | None,
                      cameras: Mapping[str, tuple[CameraIntrinsics, np.ndarray]],
                      config: CalibRefineConfig = CalibRefineConfig(), progress: Progress | None = None,
                      device: str | torch.device = "cpu") -> dict[str, ExtrinsicsRefinement]:
    """Refine the poses of static cameras by comparing renders of the twin's scene with their frames.

    Args:
        scene: the twin's Gaussians (its table and bodies are what the cameras are compared against).
        frame_sets: S frame sets (serial -> ``CameraFrame``, RGB uint8 [H, W, 3], depth [m]); a camera
            is refined on every frame set that holds it.
        body_poses: block and pusher (x, y, z, qw, qx, qy, qz) [m], world frame, [2, 7] for all frame
            sets or [S, 2, 7] one per frame set.
        link_poses: ``T_world_link`` of panda_link0..8, [9, 4, 4] or [S, 9, 4, 4]; None for a scene
            without the robot.
        cameras: serial -> (intrinsics, initial ``T_world_camera`` [4, 4], OpenCV axes, metres).
        config: iterations, loss weights and masks.
        progress: called as ``progress(serial, pooling factor, iteration, loss)``.
        device: torch device that renders.
    Returns:
        serial -> ``ExtrinsicsRefinement``.
    Raises:
        ValueError: a camera without frames, a frame whose size does not match its intrinsics, badly
            shaped or non-rigid poses, or fewer than ``config.min_valid_pixels`` usable pixels.
    """
    if not cameras:
        raise ValueError("refine_extrinsics needs at least one camera")
    S = len(frame_sets)
    bp = _per_frame_set(body_poses, (2, 7), S, "body_poses")
    lp = None if link_poses is None else _per_frame_set(link_poses, (9, 4, 4), S, "link_poses")
    jobs = {}
    for serial, (intr, T0) in cameras.items():
        used = [s for s, fs in enumerate(frame_sets) if serial in fs]
        if not used:
            raise ValueError(f"camera {serial}: no frame set holds a frame of it")
        for s in used:
            if frame_sets[s][serial].rgb.shape[:2] != (intr.height, intr.width):
                shape = frame_sets[s][serial].rgb.shape
                raise ValueError(f"camera {serial}: frame {shape[1]}x{shape[0]} does not match its intrinsics "
                                 f"{intr.width}x{intr.height}")
        jobs[serial] = (intr, as_pose(T0, f"camera {serial}: T_world_camera"), used)
    dev = torch.device(device)
    poses = scene.body_poses(bp, lp)
    dyn_means, dyn_quats = (t.to(dev) for t in scene.world_gaussians(poses))  # [S, G, .] world frame
    out = {}
    for serial, (intr, T0, used) in jobs.items():
        frames = [frame_sets[s][serial] for s in used]
        out[serial] = _CameraSolver(scene, intr, T0, (dyn_means[used], dyn_quats[used]), serial, frames, config,
                                    progress, dev).solve()
    return out


def _per_frame_set(x: np.ndarray, shape: tuple[int, ...], S: int, name: str) -> np.ndarray:
    """``x`` of ``shape`` (shared by all frame sets) or [S, *shape] -> [S, *shape] float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape not in (shape, (S,) + shape):
        raise ValueError(f"{name} must be {list(shape)} or {[S, *shape]}, got {list(x.shape)}")
    return np.ascontiguousarray(np.broadcast_to(x, (S,) + shape))


def _huber(r: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Huber loss (0.5 r^2 / delta below delta, |r| - delta / 2 beyond) and its IRLS weight (gradient / r)."""
    a = r.abs()
    loss = torch.where(a < delta, 0.5 * a * a / delta, a - 0.5 * delta)
    return loss, torch.clamp(delta / a.clamp_min(1e-12), max=1.0) / delta


class _CameraSolver:
    """Gauss-Newton on one camera's correction ``D`` (camera frame), over its S frame sets."""

    def __init__(self, scene: GaussianScene, intrinsics: CameraIntrinsics, T0: np.ndarray, dynamic: tuple,
                 serial: str, frames: list[CameraFrame], config: CalibRefineConfig, progress: Progress | None,
                 device: torch.device) -> None:
        self.intr, self.T0, self.serial, self.device = intrinsics, T0, serial, device
        self.cfg, self.progress = config, progress
        self.table = scene.table.to(device).tensors()
        self.dynamic = dynamic + scene.dynamic.to(device).tensors()[2:]  # world-frame means, quats [S, G, .]
        rgb = torch.as_tensor(np.stack([np.asarray(f.rgb) for f in frames]), device=device)
        self.obs_rgb = rgb.float() / 255.0  # [S, H, W, 3]
        ok = (rgb < config.saturation_level).all(dim=-1, keepdim=True)
        has_depth = all(f.depth_m is not None for f in frames)
        self.use_depth = has_depth and config.depth_weight_per_m > 0
        if has_depth:
            d = np.stack([np.asarray(f.depth_m, dtype=np.float32) for f in frames])[..., None]
            d_ok = np.isfinite(d) & (d > 0)
            self.obs_depth = torch.as_tensor(np.where(d_ok, d, 0.0), device=device)
            self.depth_ok = torch.as_tensor(d_ok, device=device)
            if config.mask_missing_depth:
                ok &= self.depth_ok
        self.frame_ok = ok  # [S, H, W, 1]
        self.fd = np.array([config.fd_m] * 3 + [config.fd_rad] * 3)

    def _render(self, Ds: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(RGB, depth [m], alpha) [K, S, H, W, .] of the whole scene in the S frame sets, seen from the
        camera moved by K corrections ``Ds`` [4, 4]: the table, the dynamic bodies composited over it."""
        intr = self.intr
        view, K = camera_tensors([intr] * len(Ds), [self.T0 @ D for D in Ds], self.device)
        with torch.no_grad():
            back = rasterization(*self.table, view, K, intr.width, intr.height)  # [K, H, W, .]
            front = rasterization(*self.dynamic, view, K, intr.width, intr.height)  # [S, K, H, W, .]
        images = composite_over(front[:3], tuple(x[None] for x in back[:3]))
        return tuple(x.transpose(0, 1) for x in images)

    # ------------------------------------------------------------------ residuals
    def _setup(self, base, factor: int) -> dict:
        """Masks, gains and pooled observations fitted at the base render (one iteration holds them)."""
        cfg = self.cfg
        color, _, alpha = (x[0] for x in base)  # [S, H, W, .]
        valid = self.frame_ok & (alpha > cfg.min_render_alpha)
        obs = self.obs_rgb
        if cfg.exposure_compensation:
            o = obs * valid
            gain = ((color * o).sum(dim=(1, 2)) / (o * o).sum(dim=(1, 2)).clamp_min(1e-6)).clamp(0.5, 2.0)
            obs = obs * gain[:, None, None, :]
        st = {"factor": factor, "valid": valid, "count": int(valid.sum())}
        st["w"], st["obs"] = self._pool(valid.float(), obs, factor)
        if self.use_depth:
            dv = valid & self.depth_ok
            st["dw"], st["obs_d"] = self._pool(dv.float(), self.obs_depth, factor)
        return st

    @staticmethod
    def _pool(w: torch.Tensor, x: torch.Tensor, f: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked average pooling by ``f`` of [S, H, W, C] images: (weights [S, h, w, 1], pooled x)."""
        if f == 1:
            return w, x * w
        p = lambda t: F.avg_pool2d(t.permute(0, 3, 1, 2), f, f, ceil_mode=True).permute(0, 2, 3, 1)  # noqa: E731
        pw = p(w)
        return (pw > 0.5).float(), p(x * w) / pw.clamp_min(1e-6) * (pw > 0.5)

    def _residuals(self, images, st: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw residuals [K, R] of renders [K, S, ...] and the weight [R] of each: the loss is
        ``sum(weight * huber(residual))`` (the mean Huber over valid pixels, RGB plus depth)."""
        cfg, f = self.cfg, st["factor"]
        color, depth, _ = images
        K = color.shape[0]
        flat = lambda t: t.reshape((-1,) + t.shape[2:])  # noqa: E731
        tile = lambda t: t.repeat(K, 1, 1, 1)  # noqa: E731  [S, ...] -> [K * S, ...], k * S + s
        w = st["w"]
        _, rc = self._pool(tile(st["valid"].float()), flat(color), f)
        res = [(rc - tile(st["obs"] * w)).reshape(K, -1)]
        scale = [(cfg.rgb_weight / (3 * max(float(w.sum()), 1.0))) * w.expand(st["obs"].shape).reshape(-1)]
        if self.use_depth:
            dw = st["dw"]
            _, rd = self._pool(tile((st["valid"] & self.depth_ok).float()), flat(depth), f)
            res.append((cfg.depth_weight_per_m * (rd - tile(st["obs_d"] * dw))).reshape(K, -1))
            scale.append(dw.reshape(-1) / max(float(dw.sum()), 1.0))
        return torch.cat(res, dim=1), torch.cat(scale)

    def _loss(self, r: torch.Tensor, scale: torch.Tensor) -> float:
        return float((scale * _huber(r, self.cfg.huber_delta)[0]).sum())

    # ------------------------------------------------------------------ solve
    def _step(self, D: np.ndarray, base, factor: int, lam: float) -> tuple[np.ndarray | None, object, float, float]:
        """One Levenberg-Marquardt iteration from ``D``: (step or None, its render, loss before, damping)."""
        cfg = self.cfg
        st = self._setup(base, factor)
        r0, scale = self._residuals(base, st)
        r0 = r0[0]
        moved = self._residuals(self._render([D @ twist_pose(h) for h in np.diag(self.fd)]), st)[0]
        J = ((moved - r0) / torch.as_tensor(self.fd[:, None], dtype=r0.dtype, device=r0.device)).T.double()
        loss0 = self._loss(r0, scale)
        w = (scale * _huber(r0, cfg.huber_delta)[1]).double()
        H, g = J.T @ (w[:, None] * J), J.T @ (w * r0.double())
        while lam < 1e6:
            A = H + lam * torch.diag(torch.diag(H)) + 1e-18 * torch.eye(6, dtype=H.dtype, device=H.device)
            step = -torch.linalg.solve(A, g).cpu().numpy()
            step *= min(1.0, cfg.max_step_m / max(np.linalg.norm(step[:3]), 1e-12),
                        cfg.max_step_rad / max(np.linalg.norm(step[3:]), 1e-12))
            trial = self._render([D @ twist_pose(step)])
            if self._loss(self._residuals(trial, st)[0][0], scale) < loss0:
                return step, trial, loss0, max(lam / 10.0, 1e-9)
            lam *= 10.0
        return None, base, loss0, lam

    def _full_loss(self, base) -> tuple[float, int]:
        """Loss at full resolution of a render, and its number of valid pixels."""
        st = self._setup(base, 1)
        r, scale = self._residuals(base, st)
        return self._loss(r[0], scale), st["count"]

    def solve(self) -> ExtrinsicsRefinement:
        t0 = time.perf_counter()
        cfg = self.cfg
        D = np.eye(4)
        base = self._render([D])
        loss_before, count = self._full_loss(base)
        if count < cfg.min_valid_pixels:
            raise ValueError(f"camera {self.serial}: only {count} usable pixels (need {cfg.min_valid_pixels})")
        total, converged = 0, False
        for factor in cfg.levels:
            converged, lam = False, cfg.damping
            for it in range(cfg.iterations):
                step, base, loss0, lam = self._step(D, base, factor, lam)
                total += 1
                if step is None:  # no step lowers the loss: a minimum at this level
                    converged = True
                    break
                D = D @ twist_pose(step)
                if self.progress is not None:
                    self.progress(self.serial, factor, it, loss0)
                if np.linalg.norm(step[:3]) < cfg.stop_m and np.linalg.norm(step[3:]) < cfg.stop_rad:
                    converged = True
                    break
        loss_after, count = self._full_loss(base)
        delta = np.r_[D[:3, 3], matrix_to_rotvec(D[:3, :3])]
        return ExtrinsicsRefinement(
            serial=self.serial, T_world_camera=self.T0 @ D, T_world_camera_initial=self.T0.copy(), delta=delta,
            translation_mm=1e3 * float(np.linalg.norm(D[:3, 3])),
            rotation_deg=float(np.rad2deg(np.linalg.norm(delta[3:]))),
            loss_before=loss_before, loss_after=loss_after, converged=converged, iterations=total,
            valid_pixels=count, seconds=time.perf_counter() - t0)
