"""Gaussians sampled on the surfaces of primitives and meshes, in the shape's local frame.

Every sampler places flat ("surfel") Gaussians on the surface: two in-plane standard deviations of
``scale_factor * spacing`` and a normal one ``thickness * spacing``, oriented so each Gaussian's
local z axis is the outward surface normal. The density is given either as ``spacing`` [m] (mean
distance between neighbouring Gaussians) or ``density`` [Gaussians per m^2] = 1 / spacing^2.
``jitter`` (a fraction of the spacing) and ``seed`` give other, reproducible samplings of the same shape.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from ._quat import quat_from_z_to
from ._set import GaussianSet

DEFAULT_SPACING_M = 0.005


def resolve_spacing(spacing: Optional[float] = None, density: Optional[float] = None) -> float:
    """Spacing [m] from ``spacing`` [m] or ``density`` [1/m^2] (at most one given; default 5 mm)."""
    if spacing is not None and density is not None:
        raise ValueError("give spacing or density, not both")
    if density is not None:
        if not density > 0:
            raise ValueError(f"density must be > 0 Gaussians/m^2, got {density}")
        return 1.0 / math.sqrt(density)
    if spacing is None:
        return DEFAULT_SPACING_M
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0 m, got {spacing}")
    return float(spacing)


def _rgb(color) -> np.ndarray:
    c = np.asarray(color, dtype=np.float64)
    if c.shape != (3,) or not np.all((c >= 0) & (c <= 1)):
        raise ValueError(f"color must be RGB in [0, 1], got {color}")
    return c


def surfels(
    points: np.ndarray,  # [n, 3] m
    normals: np.ndarray,  # [n, 3] unit
    spacing: float,
    colors,  # [3] or [n, 3] RGB in [0, 1]
    opacity: float = 0.95,
    scale_factor: float = 0.6,
    thickness: float = 0.1,
) -> GaussianSet:
    """Flat Gaussians at ``points`` facing ``normals``, sized for a sampling ``spacing`` [m]."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if scale_factor <= 0 or thickness <= 0:
        raise ValueError("scale_factor and thickness must be > 0")
    n = len(points)
    cols = np.asarray(colors, dtype=np.float64)
    cols = np.broadcast_to(_rgb(cols) if cols.ndim == 1 else cols, (n, 3))
    if np.any((cols < 0) | (cols > 1)):
        raise ValueError("colors must be RGB in [0, 1]")
    nrm = torch.as_tensor(np.asarray(normals, dtype=np.float64))
    nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    s = scale_factor * spacing
    scales = torch.tensor([s, s, thickness * spacing], dtype=torch.float64).expand(n, 3)
    return GaussianSet(
        means=torch.as_tensor(np.asarray(points, dtype=np.float64)).float(),
        quats=quat_from_z_to(nrm).float(),
        scales=scales.float().contiguous(),
        opacities=torch.full((n,), float(opacity)),
        colors=torch.tensor(np.array(cols, dtype=np.float32)),
    )


def _grid(n_u: int, n_v: int, rng, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of an n_u x n_v grid on [0, 1]^2, jittered by ``jitter`` cells."""
    u, v = np.meshgrid((np.arange(n_u) + 0.5) / n_u, (np.arange(n_v) + 0.5) / n_v, indexing="ij")
    u, v = u.ravel(), v.ravel()
    if jitter:
        u = np.clip(u + rng.uniform(-0.5, 0.5, u.shape) * jitter / n_u, 0, 1)
        v = np.clip(v + rng.uniform(-0.5, 0.5, v.shape) * jitter / n_v, 0, 1)
    return u, v


def _check_jitter(jitter: float) -> None:
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1] (fraction of the spacing), got {jitter}")


def _positive(name: str, *values: float) -> None:
    for v in values:
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be finite and > 0, got {v}")


def sample_plane(
    size: Sequence[float],  # (sx, sy) m
    *,
    spacing: Optional[float] = None,
    density: Optional[float] = None,
    color=(0.5, 0.5, 0.5),
    opacity: float = 0.95,
    jitter: float = 0.0,
    seed: int = 0,
) -> GaussianSet:
    """A rectangular patch of ``size`` = (sx, sy) m in the local xy plane, centred at the origin,
    facing +z."""
    sx, sy = (float(v) for v in size)
    _positive("size", sx, sy)
    _check_jitter(jitter)
    sp = resolve_spacing(spacing, density)
    rng = np.random.default_rng(seed)
    u, v = _grid(max(1, round(sx / sp)), max(1, round(sy / sp)), rng, jitter)
    pts = np.stack([(u - 0.5) * sx, (v - 0.5) * sy, np.zeros_like(u)], -1)
    nrm = np.tile([0.0, 0.0, 1.0], (len(pts), 1))
    return surfels(pts, nrm, sp, _rgb(color), opacity)


def sample_box(
    size: Sequence[float],  # (sx, sy, sz) full extents, m
    *,
    spacing: Optional[float] = None,
    density: Optional[float] = None,
    color=(0.5, 0.5, 0.5),
    opacity: float = 0.95,
    jitter: float = 0.0,
    seed: int = 0,
) -> GaussianSet:
    """The six faces of an axis-aligned box of full extents ``size`` m centred at the origin."""
    ext = np.array([float(v) for v in size])
    if ext.shape != (3,):
        raise ValueError(f"size must be (sx, sy, sz), got {size}")
    _positive("size", *ext)
    _check_jitter(jitter)
    sp = resolve_spacing(spacing, density)
    rng = np.random.default_rng(seed)
    pts, nrm = [], []
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        u, v = _grid(max(1, round(ext[a] / sp)), max(1, round(ext[b] / sp)), rng, jitter)
        for sign in (-1.0, 1.0):
            p = np.zeros((len(u), 3))
            p[:, a] = (u - 0.5) * ext[a]
            p[:, b] = (v - 0.5) * ext[b]
            p[:, axis] = sign * ext[axis] / 2
            n = np.zeros((len(u), 3))
            n[:, axis] = sign
            pts.append(p)
            nrm.append(n)
    return surfels(np.concatenate(pts), np.concatenate(nrm), sp, _rgb(color), opacity)


def _disc(radius: float, sp: float, rng, jitter: float) -> np.ndarray:
    """Points of a square grid inside a disc of ``radius`` (at least its centre)."""
    n = max(1, round(2 * radius / sp))
    u, v = _grid(n, n, rng, jitter)
    x, y = (u - 0.5) * 2 * radius, (v - 0.5) * 2 * radius
    inside = x * x + y * y <= radius * radius
    if not inside.any():
        return np.zeros((1, 2))
    return np.stack([x[inside], y[inside]], -1)


def sample_cylinder(
    radius: float,
    height: float,
    *,
    spacing: Optional[float] = None,
    density: Optional[float] = None,
    color=(0.5, 0.5, 0.5),
    opacity: float = 0.95,
    caps: bool = True,
    jitter: float = 0.0,
    seed: int = 0,
) -> GaussianSet:
    """A cylinder of ``radius`` m and ``height`` m along the local z axis, centred at the origin;
    the side surface plus both end caps when ``caps``."""
    _positive("radius and height", radius, height)
    _check_jitter(jitter)
    sp = resolve_spacing(spacing, density)
    rng = np.random.default_rng(seed)
    u, v = _grid(max(3, round(2 * math.pi * radius / sp)), max(1, round(height / sp)), rng, jitter)
    th = 2 * math.pi * u
    pts = [np.stack([radius * np.cos(th), radius * np.sin(th), (v - 0.5) * height], -1)]
    nrm = [np.stack([np.cos(th), np.sin(th), np.zeros_like(th)], -1)]
    if caps:
        for sign in (-1.0, 1.0):
            d = _disc(radius, sp, rng, jitter)
            pts.append(np.concatenate([d, np.full((len(d), 1), sign * height / 2)], -1))
            nrm.append(np.tile([0.0, 0.0, sign], (len(d), 1)))
    return surfels(np.concatenate(pts), np.concatenate(nrm), sp, _rgb(color), opacity)


def sample_sphere(
    radius: float,
    *,
    spacing: Optional[float] = None,
    density: Optional[float] = None,
    color=(0.5, 0.5, 0.5),
    opacity: float = 0.95,
    jitter: float = 0.0,
    seed: int = 0,
) -> GaussianSet:
    """A sphere of ``radius`` m centred at the origin (Fibonacci lattice, ~area / spacing^2 points)."""
    _positive("radius", radius)
    _check_jitter(jitter)
    sp = resolve_spacing(spacing, density)
    n = max(4, round(4 * math.pi * radius**2 / sp**2))
    i = np.arange(n) + 0.5
    if jitter:
        i = i + np.random.default_rng(seed).uniform(-0.5, 0.5, n) * jitter
    z = 1 - 2 * i / n
    th = math.pi * (1 + 5**0.5) * i
    r = np.sqrt(np.clip(1 - z * z, 0, 1))
    nrm = np.stack([r * np.cos(th), r * np.sin(th), z], -1)
    return surfels(radius * nrm, nrm, sp, _rgb(color), opacity)


def sample_mesh(
    mesh,  # trimesh.Trimesh
    *,
    spacing: Optional[float] = None,
    density: Optional[float] = None,
    color=(0.5, 0.5, 0.5),
    opacity: float = 0.95,
    seed: int = 0,
) -> GaussianSet:
    """Area-weighted random samples (about area / spacing^2) of a trimesh mesh's surface, in the
    mesh's frame, facing the face normals. Colours come from the mesh's face or vertex colours when
    it has them, else ``color``."""
    import trimesh  # noqa: PLC0415

    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"mesh must be a trimesh.Trimesh, got {type(mesh).__name__}")
    if len(mesh.faces) == 0 or not mesh.area > 0:
        raise ValueError("mesh has no surface area")
    sp = resolve_spacing(spacing, density)
    n = max(1, round(mesh.area / sp**2))
    pts, face_idx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    nrm = mesh.face_normals[face_idx]
    cols = _rgb(color)
    if getattr(mesh.visual, "kind", None) in ("face", "vertex"):
        cols = np.asarray(mesh.visual.face_colors, dtype=np.float64)[face_idx, :3] / 255.0
    return surfels(pts, nrm, sp, cols, opacity)
