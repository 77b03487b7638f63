"""CPU tile rasterizer: torch for projection and binning, Warp kernels for per-pixel compositing.

Stages (mirroring gsplat's CUDA pipeline):
1. ``project``: EWA projection per image (``_projection``; torch autograd gives its backward).
2. ``bin_gaussians``: every (image, tile, Gaussian) overlap, sorted by tile then depth.
3. ``_Composite``: Warp forward/backward kernels over pixels, wrapped as a torch autograd Function.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

import torch
from torch import Tensor

_kernels = None


def _get_kernels():
    global _kernels
    if _kernels is None:
        import warp as wp

        wp.init()
        from . import _warp_kernels

        _kernels = _warp_kernels
    return _kernels


class Bins(NamedTuple):
    """Tile lists of all images: Gaussians of tile t are ``flatten_ids[tile_offsets[t]:tile_offsets[t+1]]``."""

    flatten_ids: Tensor  # [n_isects] int32, index into the flattened [I * N] Gaussians
    tile_offsets: Tensor  # [I * tiles_y * tiles_x + 1] int32
    tiles_x: int
    tiles_y: int


@torch.no_grad()
def bin_gaussians(
    means2d: Tensor,  # [I, N, 2]
    radii: Tensor,  # [I, N, 2] int
    depths: Tensor,  # [I, N]
    width: int,
    height: int,
    tile_size: int,
) -> Bins:
    """Tile/Gaussian overlaps of ``I`` images (from each Gaussian's screen-space box), each tile's
    list sorted front to back."""
    I, N = depths.shape
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    m = means2d.reshape(-1, 2) / tile_size
    r = radii.reshape(-1, 2).to(m.dtype) / tile_size
    x0 = torch.floor(m[:, 0] - r[:, 0]).clamp(0, tiles_x).long()
    x1 = torch.ceil(m[:, 0] + r[:, 0]).clamp(0, tiles_x).long()
    y0 = torch.floor(m[:, 1] - r[:, 1]).clamp(0, tiles_y).long()
    y1 = torch.ceil(m[:, 1] + r[:, 1]).clamp(0, tiles_y).long()
    w = x1 - x0
    count = w * (y1 - y0) * (radii.reshape(-1, 2) > 0).all(-1)
    order = torch.argsort(depths.reshape(-1), stable=True)  # stable: ties keep their order whatever else moves
    order = order[count[order] > 0]  # visible Gaussians, front to back
    cnt = count[order]
    n_tiles = I * tiles_x * tiles_y
    if order.numel() == 0:
        return Bins(
            torch.zeros(0, dtype=torch.int32),
            torch.zeros(n_tiles + 1, dtype=torch.int32),
            tiles_x,
            tiles_y,
        )
    gid = torch.repeat_interleave(order, cnt)
    start = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(gid.numel()) - torch.repeat_interleave(start, cnt)
    wg = w[gid]
    tx = x0[gid] + local % wg
    ty = y0[gid] + torch.div(local, wg, rounding_mode="floor")
    key = (torch.div(gid, N, rounding_mode="floor") * tiles_y + ty) * tiles_x + tx
    key, perm = torch.sort(key, stable=True)
    flatten_ids = gid[perm].to(torch.int32)
    per_tile = torch.bincount(key, minlength=n_tiles)
    tile_offsets = torch.zeros(n_tiles + 1, dtype=torch.int64)
    torch.cumsum(per_tile, 0, out=tile_offsets[1:])
    return Bins(flatten_ids, tile_offsets.to(torch.int32), tiles_x, tiles_y)


def _wp(t: Tensor, dtype):
    import warp as wp

    return wp.from_torch(t, dtype=dtype, requires_grad=False)


_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_MIN_PIXELS_PER_CHUNK = 4096


def _chunks(P: int) -> list[tuple[int, int]]:
    """(offset, count) pixel ranges: one per launch; several when torch may use several CPU threads
    (Warp CPU kernels are single-threaded, and release the GIL while they run)."""
    threads = torch.get_num_threads()
    n = 1 if threads <= 1 else max(1, min(2 * threads, P // _MIN_PIXELS_PER_CHUNK))
    bounds = [P * i // n for i in range(n + 1)]
    return [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _run(fns) -> None:
    """Run the launches, on a pool of ``torch.get_num_threads()`` threads when there are several."""
    global _pool, _pool_size
    if len(fns) == 1:
        fns[0]()
        return
    threads = torch.get_num_threads()
    if _pool is None or _pool_size != threads:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="twin-render"), threads
    for f in [_pool.submit(fn) for fn in fns]:
        f.result()


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of 4-channel features; returns (features [P, 4], alpha [P])."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, feats, bins, width, height, tile_size, n_images):
        import warp as wp

        k = _get_kernels()
        P = n_images * width * height
        means2d = means2d.detach().contiguous()
        conics = conics.detach().contiguous()
        opacities = opacities.detach().contiguous()
        feats = feats.detach().contiguous()
        out_feats = torch.empty(P, 4, dtype=torch.float32)
        out_T = torch.empty(P, dtype=torch.float32)
        out_last = torch.empty(P, dtype=torch.int32)
        arrays = [
            _wp(means2d, wp.vec2),
            _wp(conics, wp.vec3),
            _wp(opacities, wp.float32),
            _wp(feats, wp.vec4),
            _wp(bins.flatten_ids, wp.int32),
            _wp(bins.tile_offsets, wp.int32),
        ]
        scalars = [width, height, tile_size, bins.tiles_x, bins.tiles_y]
        outs = [_wp(out_feats, wp.vec4), _wp(out_T, wp.float32), _wp(out_last, wp.int32)]

        def launch(offset, count):
            return lambda: wp.launch(k.rasterize_fwd, dim=count, inputs=arrays + scalars + [offset] + outs,
                                     device="cpu")

        _run([launch(o, c) for o, c in _chunks(P)])
        ctx.save_for_backward(means2d, conics, opacities, feats, bins.flatten_ids, bins.tile_offsets, out_feats, out_T, out_last)
        ctx.scalars = scalars
        return out_feats, 1.0 - out_T

    @staticmethod
    def backward(ctx, v_feats_out, v_alpha_out):
        import warp as wp

        k = _get_kernels()
        means2d, conics, opacities, feats, flatten_ids, tile_offsets, out_feats, out_T, out_last = ctx.saved_tensors
        if v_feats_out is None:
            v_feats_out = torch.zeros_like(out_feats)
        if v_alpha_out is None:
            v_alpha_out = torch.zeros_like(out_T)
        geometry = any(ctx.needs_input_grad[:3])
        chunks = _chunks(out_T.shape[0])
        # one gradient buffer per chunk: Warp's CPU atomics are plain adds, so chunks must not share
        grads = [
            [torch.zeros_like(means2d), torch.zeros_like(conics), torch.zeros_like(opacities), torch.zeros_like(feats)]
            for _ in chunks
        ]
        inputs = [
            _wp(means2d, wp.vec2),
            _wp(conics, wp.vec3),
            _wp(opacities, wp.float32),
            _wp(feats, wp.vec4),
            _wp(flatten_ids, wp.int32),
            _wp(tile_offsets, wp.int32),
            *ctx.scalars,
            0,
            _wp(out_feats, wp.vec4),
            _wp(out_T, wp.float32),
            _wp(out_last, wp.int32),
            _wp(v_feats_out.to(torch.float32).contiguous(), wp.vec4),
            _wp(v_alpha_out.to(torch.float32).contiguous(), wp.float32),
            int(geometry),
        ]
        n_scalar = 6 + len(ctx.scalars)  # index of pix_offset

        def launch(offset, count, g):
            args = inputs[:n_scalar] + [offset] + inputs[n_scalar + 1 :]
            args += [_wp(g[0], wp.vec2), _wp(g[1], wp.vec3), _wp(g[2], wp.float32), _wp(g[3], wp.vec4)]
            return lambda: wp.launch(k.rasterize_bwd, dim=count, inputs=args, device="cpu")

        _run([launch(o, c, g) for (o, c), g in zip(chunks, grads)])
        v_means2d, v_conics, v_opacities, v_feats = (
            g[0] if len(g) == 1 else torch.stack(g).sum(0) for g in zip(*grads)
        )
        return v_means2d, v_conics, v_opacities, v_feats, None, None, None, None, None


def composite(
    means2d: Tensor,  # [I, N, 2]
    conics: Tensor,  # [I, N, 3]
    opacities: Tensor,  # [I, N]
    feats: Tensor,  # [I, N, F]
    radii: Tensor,  # [I, N, 2]
    depths: Tensor,  # [I, N]
    width: int,
    height: int,
    tile_size: int,
) -> tuple[Tensor, Tensor]:
    """Composited features ``[I, H, W, F]`` and alpha ``[I, H, W, 1]`` (no background)."""
    I, N, F = feats.shape
    bins = bin_gaussians(means2d, radii, depths, width, height, tile_size)
    m2 = means2d.reshape(I * N, 2).float()
    co = conics.reshape(I * N, 3).float()
    op = opacities.reshape(I * N).float()
    fl = feats.reshape(I * N, F).float()
    pad = (-F) % 4
    if pad:
        fl = torch.cat([fl, fl.new_zeros(I * N, pad)], dim=1)
    outs, alphas = [], []
    for c0 in range(0, F + pad, 4):  # every chunk composites the same alpha; the first one is returned
        out, a = _Composite.apply(m2, co, op, fl[:, c0 : c0 + 4], bins, width, height, tile_size, I)
        outs.append(out)
        alphas.append(a)
    alpha = alphas[0]
    feats_out = torch.cat(outs, dim=1)[:, :F].reshape(I, height, width, F)
    return feats_out, alpha.reshape(I, height, width, 1)
