"""Camera rig helpers: virtual cameras placed by look-at, and the conversion of calibrated cameras
to the renderer's tensors.

Conventions: ``T_world_camera`` is the camera's pose in the world frame, OpenCV camera axes (x right,
y down, z forward). Calibration intrinsics put pixel centres at integer coordinates (OpenCV); the
renderer puts them at +0.5 (gsplat). ``render_K`` is the one place that converts between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from calibration import CameraIntrinsics, look_at

__all__ = ["CAMERA_MOUNTS", "VirtualCameraConfig", "intrinsics_from_fov", "render_K", "camera_tensors", "DEFAULT_RIG",
           "DEFAULT_WRIST_CAMERA", "FLANGE_LINK"]

#: Index of the flange (``panda_link8``) among the link poses [9, 4, 4]: a wrist camera's mount.
FLANGE_LINK = 8


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
    """Pinhole intrinsics (OpenCV pixel centres) with a horizontal field of view [deg], square pixels."""
    if not 0 < hfov_deg < 180:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    f = 0.5 * width / np.tan(np.deg2rad(hfov_deg) / 2)
    return CameraIntrinsics(fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)


def render_K(intrinsics: CameraIntrinsics) -> np.ndarray:
    """The renderer's camera matrix: OpenCV's with the principal point moved by +0.5 px."""
    if intrinsics.has_distortion:
        raise ValueError("the renderer is pinhole: undistort frames before rendering against them")
    K = intrinsics.K.copy()
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    return K


def camera_tensors(intrinsics: list[CameraIntrinsics], T_world_cameras: list[np.ndarray],
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``viewmats`` [C, 4, 4] (world -> camera) and ``Ks`` [C, 3, 3] for ``twin.render.rasterization``."""
    if len(intrinsics) != len(T_world_cameras) or not intrinsics:
        raise ValueError("need one T_world_camera per camera, and at least one camera")
    view = np.stack([np.linalg.inv(np.asarray(T, dtype=np.float64)) for T in T_world_cameras])
    Ks = np.stack([render_K(i) for i in intrinsics])
    return (torch.as_tensor(view, dtype=torch.float32, device=device),
            torch.as_tensor(Ks, dtype=torch.float32, device=device))


#: Where a virtual camera can be mounted (``VirtualCameraConfig.mount``).
CAMERA_MOUNTS: tuple[str, ...] = ("world", "hand")


@dataclass(frozen=True)
class VirtualCameraConfig:
    """A camera of the simulated rig (or a policy's viewpoint): pose by look-at in the frame it is mounted
    in, pinhole intrinsics by field of view.

    ``mount`` "world": a fixed camera, ``eye_m``/``target_m`` in the world frame [m]. "hand": a wrist
    camera on the arm's flange (``panda_link8``), ``eye_m``/``target_m`` in the flange frame [m] (z out of
    the flange, along the pusher); its world pose follows the arm (``T_mount_camera`` composed with the
    flange's pose).
    """

    serial: str = "sim-cam-0"
    eye_m: tuple[float, float, float] = (1.05, 0.0, 0.75)
    target_m: tuple[float, float, float] = (0.54, 0.0, 0.0)
    width: int = 160
    height: int = 120
    hfov_deg: float = 60.0
    mount: str = "world"

    def __post_init__(self) -> None:
        if self.mount not in CAMERA_MOUNTS:
            raise ValueError(f"camera {self.serial!r}: mount must be one of {CAMERA_MOUNTS}, got {self.mount!r}")

    @property
    def T_mount_camera(self) -> np.ndarray:
        """The camera's pose [4, 4] in its mount's frame (OpenCV axes)."""
        return look_at(np.array(self.eye_m), np.array(self.target_m), up=self._up)

    @property
    def _up(self) -> tuple[float, float, float]:
        # on the flange the view looks along z: the flange's x is "up" in the image
        return (0.0, 0.0, 1.0) if self.mount == "world" else (1.0, 0.0, 0.0)

    @property
    def T_world_camera(self) -> np.ndarray:
        """The pose [4, 4] in the world frame of a fixed camera (a "hand" camera has none of its own)."""
        if self.mount != "world":
            raise ValueError(f"camera {self.serial!r} is mounted on the {self.mount}: its world pose follows "
                             f"the arm (T_mount_camera composed with the flange's pose)")
        return self.T_mount_camera

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return intrinsics_from_fov(self.width, self.height, self.hfov_deg)


#: One camera in front of the table looking back at the robot, one from each side.
DEFAULT_RIG: tuple[VirtualCameraConfig, ...] = (
    VirtualCameraConfig("sim-cam-0", (1.05, 0.0, 0.75), (0.54, 0.0, 0.0)),
    VirtualCameraConfig("sim-cam-1", (0.55, 0.65, 0.70), (0.54, 0.0, 0.0)),
    VirtualCameraConfig("sim-cam-2", (0.55, -0.65, 0.70), (0.54, 0.0, 0.0)),
)

#: A wrist camera beside the pusher, looking down along it (flange frame), as a RealSense on a Panda's hand.
DEFAULT_WRIST_CAMERA = VirtualCameraConfig("sim-wrist", eye_m=(0.08, 0.0, 0.0), target_m=(0.0, 0.0, 0.35), width=160,
                                           height=120, hfov_deg=80.0, mount="hand")
