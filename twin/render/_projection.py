"""EWA projection of 3D Gaussians into pinhole cameras (pure torch, differentiable).

This is the image model shared by the fast CPU rasterizer; it follows gsplat's "classic" 3DGS
projection: world -> camera with the viewmat, the perspective Jacobian evaluated at the mean
(with gsplat's off-screen clamp), a ``eps2d`` pixel^2 dilation of the 2D covariance, an
opacity-aware extent ``min(3.33, sqrt(2 ln(255 o)))`` sigmas per axis, and culling of Gaussians
that are behind ``near_plane``, beyond ``far_plane``, too faint (o < 1/255), at most
``radius_clip`` pixels in radius, or entirely off the image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
"""Smallest alpha a Gaussian contributes to a pixel; fainter contributions are skipped."""
ALPHA_MAX = 0.999
"""Per-Gaussian alpha clamp (gsplat 1.5's CUDA kernels)."""
TRANSMITTANCE_MIN = 1e-4
"""A pixel stops compositing before the Gaussian that would bring its transmittance to this."""
EXTENT_SIGMAS = 3.33
"""Upper bound of the screen-space extent, in standard deviations per axis."""


class Projected(NamedTuple):
    """Per-image screen-space Gaussians; ``I`` images (flattened worlds x cameras), ``N`` Gaussians."""

    means2d: Tensor  # [I, N, 2] px, pixel centres at (u + 0.5, v + 0.5)
    conics: Tensor  # [I, N, 3] upper triangle (a, b, c) of the inverse 2D covariance [1/px^2]
    depths: Tensor  # [I, N] m, camera z of the mean
    radii: Tensor  # [I, N, 2] int32 px, 0 for culled Gaussians (no gradient)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Quaternions ``[..., 4]`` as (w, x, y, z), any norm > 0 -> rotation matrices ``[..., 3, 3]``."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def project(
    means: Tensor,  # [I, N, 3] world
    quats: Tensor,  # [I, N, 4] wxyz, world
    scales: Tensor,  # [I, N, 3] m
    opacities: Tensor,  # [I, N]
    viewmats: Tensor,  # [I, 4, 4] world -> camera
    Ks: Tensor,  # [I, 3, 3]
    width: int,
    height: int,
    eps2d: float,
    near_plane: float,
    far_plane: float,
    radius_clip: float,
) -> Projected:
    """Project Gaussians into ``I`` images; one (world, camera) pair per image."""
    R_cw = viewmats[:, None, :3, :3]  # [I, 1, 3, 3]
    t_cw = viewmats[:, None, :3, 3]  # [I, 1, 3]
    means_c = (R_cw @ means[..., None]).squeeze(-1) + t_cw  # [I, N, 3]
    # Sigma_c = M M^T with M = R_cw R diag(s)
    M = R_cw @ (quat_to_rotmat(quats) * scales[..., None, :])  # [I, N, 3, 3]

    x, y, z = means_c.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))  # keeps culled entries finite (and their grads 0)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [I, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    rz = 1.0 / z
    u = x * rz
    v = y * rz
    uc = torch.minimum(torch.maximum(u, -lim_xn), lim_xp)
    vc = torch.minimum(torch.maximum(v, -lim_yn), lim_yp)
    # rows of J M, J = [[fx/z, 0, -fx u/z], [0, fy/z, -fy v/z]]
    j0 = (fx * rz)[..., None] * (M[..., 0, :] - uc[..., None] * M[..., 2, :])  # [I, N, 3]
    j1 = (fy * rz)[..., None] * (M[..., 1, :] - vc[..., None] * M[..., 2, :])
    c00 = (j0 * j0).sum(-1) + eps2d
    c01 = (j0 * j1).sum(-1)
    c11 = (j1 * j1).sum(-1) + eps2d
    det = (c00 * c11 - c01 * c01).clamp_min(1e-10)
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)
    means2d = torch.stack([fx * u + cx, fy * v + cy], dim=-1)

    with torch.no_grad():
        op = opacities.detach().expand_as(z)
        extent = torch.sqrt(2.0 * torch.log((op * 255.0).clamp_min(1.0))).clamp_max(EXTENT_SIGMAS)
        rx = torch.ceil(extent * torch.sqrt(c00.detach()))
        ry = torch.ceil(extent * torch.sqrt(c11.detach()))
        mx, my = means2d.detach().unbind(-1)
        keep = (
            in_depth
            & (op >= ALPHA_MIN)
            & ((rx > radius_clip) | (ry > radius_clip))
            & (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
            & torch.isfinite(mx) & torch.isfinite(my)
        )
        radii = torch.stack([rx, ry], dim=-1).where(keep[..., None], 0.0).to(torch.int32)
    return Projected(means2d, conics, means_c[..., 2], radii)
