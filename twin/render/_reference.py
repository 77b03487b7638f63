"""Brute-force reference renderer: every Gaussian tested at every pixel, one Gaussian at a time.

Slow and obvious on purpose; the fast paths are tested against it (forward, and backward through
torch autograd). It implements the same image model as ``rasterization`` from the formulas, with
its own matrix-form projection, and works in any floating dtype (float64 for finite differences).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._api import RenderOutput, _finish, _meta, _validate
from ._projection import ALPHA_MAX, ALPHA_MIN, EXTENT_SIGMAS, TRANSMITTANCE_MIN, Projected, quat_to_rotmat


def _project_one(means, quats, scales, opacities, viewmat, K, width, height, eps2d, near, far, radius_clip):
    """Matrix-form EWA projection of one image's Gaussians (means [N, 3] ...)."""
    R = quat_to_rotmat(quats)  # [N, 3, 3]
    S = torch.diag_embed(scales)
    cov = R @ S @ S @ R.transpose(-1, -2)  # world covariance
    W, t = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ W.T + t  # camera-frame means [N, 3]
    cov_c = W @ cov @ W.T
    z = p[:, 2]
    in_depth = (z > near) & (z < far)
    z = torch.where(in_depth, z, torch.ones_like(z))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # gsplat clamps the Jacobian's evaluation point to 1.3x the field of view
    tx = z * torch.clamp(p[:, 0] / z, min=-(cx / fx + 0.15 * width / fx), max=(width - cx) / fx + 0.15 * width / fx)
    ty = z * torch.clamp(p[:, 1] / z, min=-(cy / fy + 0.15 * height / fy), max=(height - cy) / fy + 0.15 * height / fy)
    zero = torch.zeros_like(z)
    J = torch.stack(
        [torch.stack([fx / z, zero, -fx * tx / z**2], -1), torch.stack([zero, fy / z, -fy * ty / z**2], -1)], -2
    )  # [N, 2, 3]
    cov2 = J @ cov_c @ J.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype)
    det = (cov2[:, 0, 0] * cov2[:, 1, 1] - cov2[:, 0, 1] * cov2[:, 1, 0]).clamp_min(1e-10)
    inv = torch.linalg.inv(cov2)
    conics = torch.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], -1)
    means2d = torch.stack([fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy], -1)
    with torch.no_grad():
        o = opacities.detach()
        extent = torch.sqrt(2 * torch.log((255 * o).clamp_min(1.0))).clamp_max(EXTENT_SIGMAS)
        r = torch.ceil(extent[:, None] * torch.sqrt(torch.stack([cov2[:, 0, 0], cov2[:, 1, 1]], -1)))
        m = means2d.detach()
        on_image = (m + r > 0).all(-1) & (m[:, 0] - r[:, 0] < width) & (m[:, 1] - r[:, 1] < height)
        keep = in_depth & (det > 0) & (o >= ALPHA_MIN) & (r > radius_clip).any(-1) & on_image
        radii = torch.where(keep[:, None], r, 0.0).to(torch.int32)
    return Projected(means2d, conics, p[:, 2], radii)


def rasterization_reference(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4] wxyz
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    colors: Tensor,  # [..., N, D]
    viewmats: Tensor,  # [..., C, 4, 4] world -> camera
    Ks: Tensor,  # [..., C, 3, 3]
    width: int,
    height: int,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    backgrounds: Optional[Tensor] = None,
) -> RenderOutput:
    """Same contract and images as ``rasterization``; O(pixels x Gaussians), for tests only."""
    b = _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds,
                  near_plane, far_plane, eps2d)
    dtype = b.means.dtype
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    pu, pv = u + 0.5, v + 0.5  # pixel centres [H, W]
    feats_all, alphas_all, projs = [], [], []
    for i in range(b.means.shape[0]):
        pr = _project_one(b.means[i], b.quats[i], b.scales[i], b.opacities[i], b.viewmats[i], b.Ks[i],
                          width, height, eps2d, near_plane, far_plane, radius_clip)
        projs.append(pr)
        feats = torch.cat([b.colors[i].to(dtype), pr.depths[:, None]], -1)  # [N, D + 1]
        T = torch.ones(height, width, dtype=dtype)
        acc = torch.zeros(height, width, feats.shape[-1], dtype=dtype)
        done = torch.zeros(height, width, dtype=torch.bool)
        visible = (pr.radii > 0).all(-1)
        for n in sorted(torch.nonzero(visible).flatten().tolist(), key=lambda n: float(pr.depths[n].detach())):
            a, bb, c = pr.conics[n]
            dx, dy = pr.means2d[n, 0] - pu, pr.means2d[n, 1] - pv
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + bb * dx * dy
            alpha = torch.clamp_max(b.opacities[i, n] * torch.exp(-sigma), ALPHA_MAX)
            hit = ~done & (sigma >= 0) & (alpha >= ALPHA_MIN)
            next_T = T * (1 - alpha)
            stop = hit & (next_T <= TRANSMITTANCE_MIN)
            add = hit & ~stop
            acc = acc + torch.where(add, alpha * T, 0.0)[..., None] * feats[n]
            T = torch.where(add, next_T, T)
            done = done | stop
        feats_all.append(acc)
        alphas_all.append((1 - T)[..., None])
    proj = Projected(*(torch.stack([getattr(p, f) for p in projs]) for f in Projected._fields))
    colors_o, depths_o, alphas_o = _finish(b, torch.stack(feats_all), torch.stack(alphas_all), height, width)
    return RenderOutput(colors_o, depths_o, alphas_o, _meta(b, proj, "reference", None))
