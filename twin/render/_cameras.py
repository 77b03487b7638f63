"""Camera pose helpers: OpenCV camera frames (x right, y down, z forward) and world -> camera viewmats."""

from __future__ import annotations

import torch
from torch import Tensor


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> Tensor:
    """``T_world_camera`` [..., 4, 4] of OpenCV cameras at ``eye`` [..., 3] m looking at ``target``
    [..., 3] m, with world ``up`` [3] pointing up in the image (-y). Differentiable in eye and target."""
    eye = torch.as_tensor(eye, dtype=torch.get_default_dtype()) if not isinstance(eye, Tensor) else eye
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device)
    if eye.shape[-1:] != (3,) or target.shape[-1:] != (3,) or up.shape != (3,):
        raise ValueError("eye and target must be [..., 3] and up [3]")
    fwd = target - eye
    fwd = fwd / fwd.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(fwd, up.expand_as(fwd), dim=-1)
    n = right.norm(dim=-1, keepdim=True)
    if bool((n < 1e-9).any()):
        raise ValueError("the viewing direction is parallel to up")
    right = right / n
    down = torch.linalg.cross(fwd, right, dim=-1)
    T = torch.zeros(fwd.shape[:-1] + (4, 4), dtype=eye.dtype, device=eye.device)
    T[..., :3, :3] = torch.stack([right, down, fwd], dim=-1)  # columns: camera axes in world
    T[..., :3, 3] = eye.expand_as(fwd)
    T[..., 3, 3] = 1.0
    return T


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
