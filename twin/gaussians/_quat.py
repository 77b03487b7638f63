"""Batched quaternion helpers in torch, (w, x, y, z) order, differentiable."""

from __future__ import annotations

import torch
from torch import Tensor


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of [..., 4] (w, x, y, z) quaternions (broadcasting)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_apply(q: Tensor, v: Tensor) -> Tensor:
    """Rotate vectors v [..., 3] by unit quaternions q [..., 4] (w, x, y, z) (broadcasting)."""
    u, v = torch.broadcast_tensors(q[..., 1:], v)
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + q[..., :1] * t + torch.cross(u, t, dim=-1)


def quat_from_z_to(normals: Tensor) -> Tensor:
    """Unit quaternions [..., 4] rotating +z onto the unit vectors ``normals`` [..., 3]."""
    nx, ny, nz = normals.unbind(-1)
    q = torch.stack([1.0 + nz, -ny, nx, torch.zeros_like(nz)], dim=-1)
    flip = 1.0 + nz < 1e-6  # n = -z: any half turn about an axis in the xy plane
    q = torch.where(flip[..., None], torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=q.dtype, device=q.device), q)
    return q / q.norm(dim=-1, keepdim=True)
