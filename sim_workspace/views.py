"""Camera frames rendered from a twin state: the observations of synthetic tests, benchmarks and the
simulated workspace's cameras. RGB uint8 and depth in metres (0 = no return), OpenCV conventions."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from twin.render.scene import SceneRenderer
from twin.rig import VirtualCameraConfig
from .appearance import CameraPhotometry

__all__ = ["SensorNoiseConfig", "render_frames"]


@dataclass(frozen=True)
class SensorNoiseConfig:
    """Noise of a simulated RGB-D camera."""

    rgb_sigma: float = 3.0 / 255.0
    #: Depth noise grows with distance squared, like a stereo camera: sigma = k * z^2 [m].
    depth_sigma_per_m2: float = 0.002
    #: Fraction of depth pixels without a return (holes), and the exposure gain range.
    depth_hole_fraction: float = 0.02
    exposure_gain_range: tuple[float, float] = (1.0, 1.0)


def render_frames(renderer: SceneRenderer, body_poses: np.ndarray, link_poses: np.ndarray | None,
                  cameras: tuple[VirtualCameraConfig, ...], noise: SensorNoiseConfig | None,
                  rng: np.random.Generator, host_time_ns: int | None = None,
                  photometry: Mapping[str, CameraPhotometry] | None = None,
                  camera_poses: Mapping[str, np.ndarray] | None = None) -> dict:
    """Frames (serial -> ``twin.cameras.CameraFrame``) of one world state seen by ``cameras``, rendered
    by ``renderer``'s scene (which must know the cameras: ``renderer.set_cameras``). ``photometry``:
    serial -> the camera's white balance and vignetting (none: an ideal response), applied before the
    exposure gain and the noise. ``camera_poses``: serial -> ``T_world_camera`` [4, 4] of a camera that moves
    (a wrist camera), for this state; its frame carries that pose."""
    from twin.cameras import CameraFrame

    with torch.no_grad():
        moving = {s: np.asarray(T)[None] for s, T in (camera_poses or {}).items()}
        extra = {"camera_poses": moving} if moving else {}
        renders = renderer.render(body_poses, link_poses, tuple(c.serial for c in cameras), **extra)
    now = time.monotonic_ns() if host_time_ns is None else host_time_ns
    frames = {}
    for cam in cameras:
        color, depth, alpha = (t.cpu().numpy() for t in renders[cam.serial])
        rgb = color.astype(np.float64)
        if photometry and cam.serial in photometry:
            rgb = photometry[cam.serial].apply(rgb)
        d = np.where(alpha[..., 0] > 0.5, depth[..., 0], 0.0).astype(np.float64)
        if noise is not None:
            gain = rng.uniform(*noise.exposure_gain_range)
            rgb = rgb * gain + rng.normal(0.0, noise.rgb_sigma, rgb.shape)
            d = d + rng.normal(0.0, 1.0, d.shape) * noise.depth_sigma_per_m2 * d**2
            d[rng.random(d.shape) < noise.depth_hole_fraction] = 0.0
        frames[cam.serial] = CameraFrame(
            serial=cam.serial,
            rgb=(np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8),
            depth_m=d.astype(np.float32),
            intrinsics=cam.intrinsics,
            T_world_camera=np.asarray(camera_poses[cam.serial]) if cam.serial in moving else cam.T_world_camera,
            device_time_ms=now / 1e6,
            host_time_ns=now,
        )
    return frames
