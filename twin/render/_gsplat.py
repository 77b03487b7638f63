"""The CUDA backend: ``gsplat.rasterization`` in "RGB+ED"-equivalent form (imported lazily)."""

from __future__ import annotations

import math

import torch

from ._projection import Projected


def render_gsplat(b, width: int, height: int, near_plane: float, far_plane: float, radius_clip: float,
                  eps2d: float, tile_size: int):
    """Render a validated ``_Batch``; returns (feats [I, H, W, D + 1] with accumulated depth last,
    alphas [I, H, W, 1], Projected [I, N, ...])."""
    import gsplat  # noqa: PLC0415

    B, C, N = math.prod(b.batch), b.C, b.N

    def worlds(t):  # [I, N, ...] (each world repeated for its C cameras) -> [B, N, ...]
        return t.reshape((B, C) + t.shape[1:])[:, 0]

    colors = worlds(b.colors)
    feats, alphas, meta = gsplat.rasterization(
        worlds(b.means).float().contiguous(),
        worlds(b.quats).float().contiguous(),
        worlds(b.scales).float().contiguous(),
        worlds(b.opacities).float().contiguous(),
        colors.float().contiguous(),
        b.viewmats.reshape(B, C, 4, 4).float().contiguous(),
        b.Ks.reshape(B, C, 3, 3).float().contiguous(),
        width,
        height,
        near_plane=near_plane,
        far_plane=far_plane,
        radius_clip=radius_clip,
        eps2d=eps2d,
        packed=False,
        tile_size=tile_size,
        render_mode="RGB+D",  # accumulated depth; normalised (and background added) by the caller
        rasterize_mode="classic",
    )
    I = B * C
    proj = Projected(
        means2d=meta["means2d"].reshape(I, N, 2),
        conics=meta["conics"].reshape(I, N, 3),
        depths=meta["depths"].reshape(I, N),
        radii=meta["radii"].reshape(I, N, -1).to(torch.int32).expand(I, N, 2),
    )
    return feats.reshape(I, height, width, -1), alphas.reshape(I, height, width, 1), proj
