"""Body-local Gaussians to world frame for every world at once."""

from __future__ import annotations

import torch
from torch import Tensor

from ._quat import quat_apply, quat_mul


def transform_gaussians(
    means: Tensor,  # [N, 3] m, each Gaussian in its body's frame
    quats: Tensor,  # [N, 4] (w, x, y, z), in its body's frame
    body_ids: Tensor,  # [N] int, index of each Gaussian's body in [0, K)
    body_positions: Tensor,  # [..., K, 3] m, body origins in the world frame
    body_quats: Tensor,  # [..., K, 4] (w, x, y, z), body orientations in the world frame
) -> tuple[Tensor, Tensor]:
    """World-frame ``means`` [..., N, 3] and unit ``quats`` [..., N, 4] (w, x, y, z) of all Gaussians
    in all worlds (``...``, e.g. [B]), given each body's pose ``T_world_body`` per world.

    One vectorised torch expression: differentiable w.r.t. the body poses and the local Gaussians.
    Body quaternions need not be normalised.
    """
    for name, t in (("means", means), ("quats", quats), ("body_positions", body_positions),
                    ("body_quats", body_quats)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if not isinstance(body_ids, Tensor) or body_ids.is_floating_point() or body_ids.is_complex():
        raise TypeError("body_ids must be an integer torch.Tensor")
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {list(means.shape)}")
    N = means.shape[0]
    if tuple(quats.shape) != (N, 4) or tuple(body_ids.shape) != (N,):
        raise ValueError(f"quats must be [{N}, 4] and body_ids [{N}], got {list(quats.shape)}, {list(body_ids.shape)}")
    if body_positions.ndim < 2 or body_positions.shape[-1] != 3:
        raise ValueError(f"body_positions must be [..., K, 3], got {list(body_positions.shape)}")
    if tuple(body_quats.shape) != tuple(body_positions.shape[:-1]) + (4,):
        raise ValueError(f"body_quats must be {list(body_positions.shape[:-1]) + [4]}, got {list(body_quats.shape)}")
    K = body_positions.shape[-2]
    if N and (int(body_ids.min()) < 0 or int(body_ids.max()) >= K):
        raise ValueError(f"body_ids must lie in [0, {K}), got [{int(body_ids.min())}, {int(body_ids.max())}]")
    ids = body_ids.to(device=body_positions.device, dtype=torch.long)
    bq = body_quats / body_quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    p = body_positions.index_select(-2, ids)  # [..., N, 3]
    q = bq.index_select(-2, ids)  # [..., N, 4]
    means_w = quat_apply(q, means) + p
    quats_w = quat_mul(q, quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return means_w, quats_w
