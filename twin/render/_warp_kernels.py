"""Warp kernels of the CPU tile rasterizer: per-pixel front-to-back compositing and its adjoint.

One thread per pixel of all images (pixels ``pix_offset`` to ``pix_offset + dim``). Gaussians reach a pixel through its tile's depth-sorted list
(``tile_offsets`` / ``flatten_ids``). Features are composited four channels at a time (``wp.vec4``);
the caller splits wider features into chunks of four. Imported lazily: importing ``twin.render``
never loads Warp.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

_ALPHA_MIN = wp.constant(1.0 / 255.0)
_ALPHA_MAX = wp.constant(0.999)
_T_MIN = wp.constant(1.0e-4)
# alpha = o exp(-sigma) < 1/255 for every o <= 1 once sigma > ln(255) = 5.5413: skip the exp
_SIGMA_MAX = wp.constant(5.5452)


@wp.func
def _pixel_tile(pid: int, width: int, height: int, tile_size: int, tiles_x: int, tiles_y: int):
    hw = width * height
    img = pid // hw
    r = pid - img * hw
    py = r // width
    px = r - py * width
    tile = img * tiles_x * tiles_y + (py // tile_size) * tiles_x + px // tile_size
    return tile, float(px) + 0.5, float(py) + 0.5


@wp.kernel
def rasterize_fwd(
    means2d: wp.array(dtype=wp.vec2),
    conics: wp.array(dtype=wp.vec3),
    opacities: wp.array(dtype=float),
    feats: wp.array(dtype=wp.vec4),
    flatten_ids: wp.array(dtype=wp.int32),
    tile_offsets: wp.array(dtype=wp.int32),
    width: int,
    height: int,
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
    pix_offset: int,
    out_feats: wp.array(dtype=wp.vec4),
    out_T: wp.array(dtype=float),
    out_last: wp.array(dtype=wp.int32),
):
    pid = wp.tid() + pix_offset
    tile, fx, fy = _pixel_tile(pid, width, height, tile_size, tiles_x, tiles_y)
    T = float(1.0)
    last = int(-1)
    acc = wp.vec4(0.0)
    for k in range(tile_offsets[tile], tile_offsets[tile + 1]):
        g = flatten_ids[k]
        m = means2d[g]
        c = conics[g]
        dx = m[0] - fx
        dy = m[1] - fy
        sigma = 0.5 * (c[0] * dx * dx + c[2] * dy * dy) + c[1] * dx * dy
        if sigma < 0.0 or sigma > _SIGMA_MAX:
            continue
        alpha = wp.min(_ALPHA_MAX, opacities[g] * wp.exp(-sigma))
        if alpha < _ALPHA_MIN:
            continue
        next_T = T * (1.0 - alpha)
        if next_T <= _T_MIN:
            break
        acc = acc + feats[g] * (alpha * T)
        last = k
        T = next_T
    out_feats[pid] = acc
    out_T[pid] = T
    out_last[pid] = last


@wp.kernel
def rasterize_bwd(
    means2d: wp.array(dtype=wp.vec2),
    conics: wp.array(dtype=wp.vec3),
    opacities: wp.array(dtype=float),
    feats: wp.array(dtype=wp.vec4),
    flatten_ids: wp.array(dtype=wp.int32),
    tile_offsets: wp.array(dtype=wp.int32),
    width: int,
    height: int,
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
    pix_offset: int,
    out_feats: wp.array(dtype=wp.vec4),
    out_T: wp.array(dtype=float),
    out_last: wp.array(dtype=wp.int32),
    v_out_feats: wp.array(dtype=wp.vec4),
    v_out_alpha: wp.array(dtype=float),
    with_geometry: int,
    v_means2d: wp.array(dtype=wp.vec2),
    v_conics: wp.array(dtype=wp.vec3),
    v_opacities: wp.array(dtype=float),
    v_feats: wp.array(dtype=wp.vec4),
):
    """Adjoint of ``rasterize_fwd``, replayed front to back.

    With w_i = alpha_i T_i, colour C = sum_i f_i w_i and alpha A = 1 - T_final:
    dC/df_i = w_i, dC/dalpha_i = f_i T_i - S_i / (1 - alpha_i) with S_i = sum_{j>i} f_j w_j = C - sum_{j<=i} f_j w_j,
    dA/dalpha_i = T_final / (1 - alpha_i).
    """
    pid = wp.tid() + pix_offset
    last = out_last[pid]
    if last < 0:
        return
    tile, fx, fy = _pixel_tile(pid, width, height, tile_size, tiles_x, tiles_y)
    T_final = out_T[pid]
    C = out_feats[pid]
    vC = v_out_feats[pid]
    vA = v_out_alpha[pid]
    T = float(1.0)
    acc = wp.vec4(0.0)
    for k in range(tile_offsets[tile], last + 1):
        g = flatten_ids[k]
        m = means2d[g]
        c = conics[g]
        dx = m[0] - fx
        dy = m[1] - fy
        sigma = 0.5 * (c[0] * dx * dx + c[2] * dy * dy) + c[1] * dx * dy
        if sigma < 0.0 or sigma > _SIGMA_MAX:
            continue
        o = opacities[g]
        vis = wp.exp(-sigma)
        alpha = wp.min(_ALPHA_MAX, o * vis)
        if alpha < _ALPHA_MIN:
            continue
        f = feats[g]
        w = alpha * T
        acc = acc + f * w
        wp.atomic_add(v_feats, g, vC * w)
        if with_geometry != 0:
            inv = 1.0 / (1.0 - alpha)
            v_alpha = wp.dot(vC, f * T - (C - acc) * inv) + vA * T_final * inv
            if o * vis <= _ALPHA_MAX:
                v_sigma = -o * vis * v_alpha
                wp.atomic_add(v_conics, g, wp.vec3(0.5 * dx * dx * v_sigma, dx * dy * v_sigma, 0.5 * dy * dy * v_sigma))
                wp.atomic_add(v_means2d, g, wp.vec2(v_sigma * (c[0] * dx + c[1] * dy), v_sigma * (c[1] * dx + c[2] * dy)))
                wp.atomic_add(v_opacities, g, vis * v_alpha)
        T = T * (1.0 - alpha)
