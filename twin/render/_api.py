"""The public ``rasterization`` call: validation, batching, and dispatch to a backend."""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple, Optional

import torch
from torch import Tensor

Backend = Literal["auto", "cpu", "gsplat"]
_BACKENDS = ("auto", "cpu", "gsplat")
CPU_TILE_SIZE = 8
"""Default tile edge [px] of the CPU rasterizer (smaller tiles waste fewer per-pixel tests on a CPU)."""
GSPLAT_TILE_SIZE = 16


class RenderOutput(NamedTuple):
    """Images of every (world, camera) pair; ``...`` are the worlds' batch dims (none for one world).

    Unpacks as ``colors, depths, alphas, meta = rasterization(...)``.
    """

    colors: Tensor
    """[..., C, H, W, D] composited colours (RGB 0..1 when D = 3), background blended in."""
    depths: Tensor
    """[..., C, H, W, 1] m, expected depth along the camera z axis, sum(w z) / sum(w); 0 where alpha = 0."""
    alphas: Tensor
    """[..., C, H, W, 1] accumulated opacity, 1 - final transmittance."""
    meta: dict
    """Per-Gaussian screen-space data: ``radii`` [..., C, N, 2] int32 px (0 = culled, not drawn),
    ``means2d`` [..., C, N, 2] px, ``depths`` [..., C, N] m, ``conics`` [..., C, N, 3], and
    ``backend`` ("cpu" | "gsplat") and ``tile_size``."""


@functools.lru_cache(maxsize=1)
def has_cuda_rasterizer() -> bool:
    """Whether gsplat's CUDA rasterizer can run here: False only when there is no CUDA device or gsplat
    is not installed. On a CUDA machine whose gsplat extension fails to load or build, this raises
    (``RuntimeError`` with the cause): a broken GPU path must not read as an absent one.

    May build gsplat's extension on first call on a CUDA machine; never called on import.
    """
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401, PLC0415
    except ModuleNotFoundError:
        return False
    try:
        from gsplat.cuda._backend import _C  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - any failure here is a broken install, reported as such
        raise RuntimeError(f"CUDA is present but gsplat's CUDA rasterizer fails to load: {exc}") from exc
    if _C is None:
        raise RuntimeError("CUDA is present but gsplat's CUDA extension did not load (see gsplat's log above)")
    return True


class _Batch(NamedTuple):
    batch: tuple  # worlds' batch dims
    N: int
    C: int
    D: int
    # flattened per image (I = prod(batch) * C)
    means: Tensor  # [I, N, 3]
    quats: Tensor  # [I, N, 4]
    scales: Tensor  # [I, N, 3]
    opacities: Tensor  # [I, N]
    colors: Tensor  # [I, N, D]
    viewmats: Tensor  # [I, 4, 4]
    Ks: Tensor  # [I, 3, 3]
    backgrounds: Optional[Tensor]  # [I, D]


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _validate(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds,
    near_plane, far_plane, eps2d,
) -> _Batch:
    named = dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
                 viewmats=viewmats, Ks=Ks)
    for name, t in named.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.device != means.device:
            raise ValueError(f"{name} is on {t.device} but means is on {means.device}")
    if backgrounds is not None and not isinstance(backgrounds, Tensor):
        raise TypeError(f"backgrounds must be a torch.Tensor or None, got {type(backgrounds).__name__}")
    _check_size("width", width)
    _check_size("height", height)
    if not (0.0 < near_plane < far_plane):
        raise ValueError(f"need 0 < near_plane < far_plane, got {near_plane}, {far_plane}")
    if eps2d < 0.0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    if means.ndim < 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be [..., N, 3], got {tuple(means.shape)}")
    batch, N = tuple(means.shape[:-2]), means.shape[-2]
    if colors.ndim < 2:
        raise ValueError(f"colors must be [..., N, D], got {tuple(colors.shape)}")
    D = colors.shape[-1]

    def per_gaussian(name, t, tail):
        full, shared = batch + (N,) + tail, (N,) + tail
        if tuple(t.shape) == full:
            return t
        if tuple(t.shape) == shared:
            return t.expand(full)
        raise ValueError(f"{name} must be {list(full)} or {list(shared)}, got {list(t.shape)}")

    quats = per_gaussian("quats", quats, (4,))
    scales = per_gaussian("scales", scales, (3,))
    opacities = per_gaussian("opacities", opacities, ())
    colors = per_gaussian("colors", colors, (D,))
    if viewmats.ndim < 3 or viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats must be [..., C, 4, 4], got {tuple(viewmats.shape)}")
    C = viewmats.shape[-3]
    if C == 0:
        raise ValueError("viewmats holds no camera")

    def per_camera(name, t, tail):
        full, shared = batch + (C,) + tail, (C,) + tail
        if tuple(t.shape) == full:
            return t
        if tuple(t.shape) == shared:
            return t.expand(full)
        raise ValueError(f"{name} must be {list(full)} or {list(shared)}, got {list(t.shape)}")

    viewmats = per_camera("viewmats", viewmats, (4, 4))
    Ks = per_camera("Ks", Ks, (3, 3))
    if backgrounds is not None:
        try:
            backgrounds = backgrounds.to(means.device).expand(batch + (C, D))
        except RuntimeError as e:
            raise ValueError(
                f"backgrounds must broadcast to {list(batch + (C, D))}, got {list(backgrounds.shape)}"
            ) from e
    B = math.prod(batch)
    I = B * C

    def per_image(t, tail):  # [*batch, N, *tail] -> [I, N, *tail]
        t = t.reshape((B, 1, N) + tail).expand((B, C, N) + tail)
        return t.reshape((I, N) + tail)

    return _Batch(
        batch=batch, N=N, C=C, D=D,
        means=per_image(means, (3,)),
        quats=per_image(quats, (4,)),
        scales=per_image(scales, (3,)),
        opacities=per_image(opacities, ()),
        colors=per_image(colors, (D,)),
        viewmats=viewmats.reshape(I, 4, 4),
        Ks=Ks.reshape(I, 3, 3),
        backgrounds=None if backgrounds is None else backgrounds.reshape(I, D),
    )


def _finish(b: _Batch, feats: Tensor, alphas: Tensor, H: int, W: int) -> tuple[Tensor, Tensor, Tensor]:
    """feats [I, H, W, D + 1] (colours then accumulated depth), alphas [I, H, W, 1] -> outputs."""
    colors = feats[..., : b.D]
    if b.backgrounds is not None:
        colors = colors + (1.0 - alphas) * b.backgrounds[:, None, None, :].to(colors.dtype)
    depths = feats[..., b.D :] / alphas.clamp_min(1e-10)
    shape = b.batch + (b.C, H, W)
    return colors.reshape(shape + (b.D,)), depths.reshape(shape + (1,)), alphas.reshape(shape + (1,))


def _meta(b: _Batch, proj, backend: str, tile_size: Optional[int]) -> dict:
    lead = b.batch + (b.C, b.N)
    return dict(
        radii=proj.radii.reshape(lead + (2,)),
        means2d=proj.means2d.reshape(lead + (2,)),
        depths=proj.depths.reshape(lead),
        conics=proj.conics.reshape(lead + (3,)),
        backend=backend,
        tile_size=tile_size,
    )


def rasterization(
    means: Tensor,  # [..., N, 3] m, world frame
    quats: Tensor,  # [..., N, 4] (w, x, y, z), world frame, any norm > 0
    scales: Tensor,  # [..., N, 3] m, standard deviations along the Gaussian's axes
    opacities: Tensor,  # [..., N] in [0, 1]
    colors: Tensor,  # [..., N, D] e.g. RGB in [0, 1]
    viewmats: Tensor,  # [..., C, 4, 4] world -> camera (T_camera_world), OpenCV axes
    Ks: Tensor,  # [..., C, 3, 3] pinhole intrinsics, px
    width: int,
    height: int,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    backgrounds: Optional[Tensor] = None,  # broadcastable to [..., C, D]
    tile_size: Optional[int] = None,
    backend: Backend = "auto",
) -> RenderOutput:
    """Render RGB (or any D channels), expected depth and alpha of 3D Gaussians for a batch of cameras
    and, optionally, a batch of worlds, in one call.

    Batching: ``...`` are the worlds' batch dims, taken from ``means`` (``[N, 3]`` = one world,
    ``[B, N, 3]`` = B worlds). Every other Gaussian tensor is either batched the same way or shared by
    all worlds (``quats [N, 4]``, ``scales [N, 3]``, ``opacities [N]``, ``colors [N, D]``), and so are
    the cameras (``viewmats [C, 4, 4]`` / ``Ks [C, 3, 3]`` shared, or ``[..., C, ...]`` per world).

    Conventions: viewmats map world to camera coordinates (OpenCV: x right, y down, z forward), i.e.
    ``viewmat = inverse(T_world_camera)``; pixel (u, v) has its centre at (u + 0.5, v + 0.5);
    quaternions are (w, x, y, z) and normalised internally.

    Image model (gsplat's "classic" 3DGS, identical on both backends): EWA projection with an ``eps2d``
    px^2 dilation, opacity-aware 3.33-sigma extents, depth-sorted front-to-back alpha compositing with
    alpha = min(0.999, o exp(-sigma)), contributions below 1/255 skipped, and a pixel stops before the
    Gaussian that would bring its transmittance to 1e-4 or below.

    Gradients flow (torch autograd) to means, quats, scales, opacities, colors and backgrounds.

    Backends: ``"gsplat"`` = ``gsplat.rasterization`` (CUDA tensors, see ``has_cuda_rasterizer()``),
    ``"cpu"`` = the CPU tile rasterizer (CPU tensors), ``"auto"`` = gsplat for CUDA tensors, else cpu.
    ``tile_size`` defaults to 16 px for gsplat and 8 px for cpu; it does not change the images. The cpu
    backend composites on up to ``torch.get_num_threads()`` threads.

    Returns ``RenderOutput(colors [..., C, H, W, D], depths [..., C, H, W, 1], alphas [..., C, H, W, 1],
    meta)``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if tile_size is not None:
        _check_size("tile_size", tile_size)
    b = _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds,
                  near_plane, far_plane, eps2d)
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "cpu"
    if backend == "gsplat":
        if not means.is_cuda:
            raise ValueError("backend='gsplat' needs CUDA tensors")
        if not has_cuda_rasterizer():
            raise RuntimeError("gsplat's CUDA rasterizer is not available here (see has_cuda_rasterizer())")
        from ._gsplat import render_gsplat

        feats, alphas, proj = render_gsplat(b, width, height, near_plane, far_plane, radius_clip, eps2d,
                                            tile_size or GSPLAT_TILE_SIZE)
        colors_o, depths_o, alphas_o = _finish(b, feats, alphas, height, width)
        return RenderOutput(colors_o, depths_o, alphas_o, _meta(b, proj, "gsplat", tile_size or GSPLAT_TILE_SIZE))
    if means.device.type != "cpu":
        raise ValueError(f"backend='cpu' needs CPU tensors, got {means.device}")
    from ._cpu import composite
    from ._projection import project

    ts = tile_size or CPU_TILE_SIZE
    proj = project(b.means, b.quats, b.scales, b.opacities, b.viewmats, b.Ks, width, height,
                   eps2d, near_plane, far_plane, radius_clip)
    feats_in = torch.cat([b.colors.to(proj.depths.dtype), proj.depths[..., None]], dim=-1)
    feats, alphas = composite(proj.means2d, proj.conics, b.opacities, feats_in, proj.radii, proj.depths,
                              width, height, ts)
    colors_o, depths_o, alphas_o = _finish(b, feats, alphas, height, width)
    return RenderOutput(colors_o, depths_o, alphas_o, _meta(b, proj, "cpu", ts))
