"""Camera pose helpers: world -> camera viewmats of OpenCV camera frames (x right, y down, z forward).
Camera poses looking at a point: `calibration.look_at`."""

from __future__ import annotations

import torch
from torch import Tensor


def viewmat_from_pose(T_world_camera: Tensor) -> Tensor:
    """World -> camera viewmats [..., 4, 4] (what ``rasterization`` takes) from rigid camera poses
    ``T_world_camera`` [..., 4, 4] (rigid inverse; differentiable)."""
    if not isinstance(T_world_camera, Tensor) or T_world_camera.shape[-2:] != (4, 4):
        raise ValueError("T_world_camera must be a [..., 4, 4] tensor")
    R = T_world_camera[..., :3, :3]
    t = T_world_camera[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -Rt @ t], dim=-1)
    bottom = torch.zeros_like(T_world_camera[..., 3:, :])
    bottom[..., 3] = 1.0
    return torch.cat([top, bottom], dim=-2)
