"""Scan of an unknown rigid object: masked multi-view RGB-D frames -> a body for the twin.

    from twin.perception.object_scan import ObjectScanConfig, scan_object
    scan = scan_object(frames, masks, ObjectScanConfig(voxel_m=0.002))
    scan.gaussians        # GaussianSet in the body frame
    scan.particles_m      # [P, 3] body frame, spacing config.particle_spacing_m
    scan.T_world_body     # [4, 4]

Stages, in order:

1. depth fusion (``object_scan_fusion``): a truncated signed distance grid over the masked points'
   bounding box, averaged over views, closed by silhouette carving and the support plane;
2. surface: zero crossings of the field (points, normals), thinned to ``gaussian_spacing_m``, coloured
   from the views that see them;
3. body frame: origin at the centroid of the fused volume (the centre of mass at uniform density),
   axes parallel to the world's at scan time;
4. particles: a cubic lattice of ``particle_spacing_m`` filling the volume (field < 0), for physics;
5. Gaussians: flat surfels on the surface points facing the normals, then a few Adam steps on their
   colours (optionally on small offsets along the normals) rendered with ``twin.render.rasterization``
   against the frames, the loss over the masked pixels.

Units: metres; world frame z up; OpenCV cameras (``T_world_camera``); RGB in [0, 1] (frames are uint8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage

from ..gaussians import GaussianSet, surfels
from ..rig import camera_tensors
from ..transforms import matrix_to_quat_wxyz
from .object_scan_fusion import (
    DepthView,
    extract_surface,
    fuse_views,
    masked_world_points,
    prepare_views,
    sample_grid,
    surface_colors,
)

if TYPE_CHECKING:
    from ..cameras import CameraFrame

__all__ = ["ObjectScanConfig", "ScannedObject", "scan_object", "object_masks", "masked_psnr", "render_gaussians"]

#: ``progress(iteration, loss)`` after each refinement step (iteration from 1; loss = mean squared
#: RGB error over the masked pixels).
ProgressCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class ObjectScanConfig:
    """Settings of ``scan_object``."""

    #: Voxel edge of the fusion grid [m].
    voxel_m: float = 0.002
    #: Truncation distance of the signed distance [m]; a few voxels, and well above the depth noise.
    truncation_m: float = 0.006
    #: The grid extends this far beyond the masked points' bounding box [m] (>= truncation_m).
    margin_m: float = 0.01
    #: World height [m] of the surface the object rests on: nothing below it is the object, and its
    #: unseen bottom is closed there. None: the lowest observed surface (``support_percentile`` of the
    #: masked points' heights). Set ``use_support=False`` for an object seen from all sides.
    support_z_m: float | None = None
    use_support: bool = True
    support_percentile: float = 0.5
    #: Voxels projecting this many pixels or more outside a view's mask are free space.
    silhouette_margin_px: int = 1
    #: Spacing of the physics particles [m] (their radius is half of it).
    particle_spacing_m: float = 0.004
    #: Spacing of the surface Gaussians [m]; None: ``voxel_m``.
    gaussian_spacing_m: float | None = None
    #: A surface point takes a view's colour when that view's depth agrees within this [m]; None: half
    #: the truncation distance.
    color_depth_tolerance_m: float | None = None
    #: Photometric refinement: Adam steps (0: none), step size on colours, and the largest offset of a
    #: Gaussian along its normal [m] (0: colours only; the particles never move).
    refine_iterations: int = 20
    refine_lr: float = 0.03
    refine_max_offset_m: float = 0.001
    #: The loss and the PSNR skip this many pixels at the mask's border (mixed object / background).
    loss_erode_px: int = 1

    def __post_init__(self) -> None:
        for name in ("voxel_m", "truncation_m", "particle_spacing_m", "refine_lr"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"ObjectScanConfig.{name} must be finite and > 0, got {v}")
        if self.truncation_m < self.voxel_m:
            raise ValueError(f"truncation_m ({self.truncation_m}) must be at least voxel_m ({self.voxel_m})")
        if self.margin_m < self.truncation_m:
            raise ValueError(f"margin_m ({self.margin_m}) must be at least truncation_m ({self.truncation_m})")
        for name in ("gaussian_spacing_m", "color_depth_tolerance_m"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"ObjectScanConfig.{name} must be None or > 0, got {v}")
        if not 0.0 <= self.support_percentile <= 50.0:
            raise ValueError(f"support_percentile must be in [0, 50], got {self.support_percentile}")
        if self.refine_iterations < 0 or self.silhouette_margin_px < 0 or self.loss_erode_px < 0:
            raise ValueError("refine_iterations, silhouette_margin_px and loss_erode_px must be >= 0")
        if not self.refine_max_offset_m >= 0:
            raise ValueError(f"refine_max_offset_m must be >= 0, got {self.refine_max_offset_m}")


@dataclass(eq=False)
class ScannedObject:
    """A scanned rigid body: its Gaussians and particles in the body frame, and its pose at scan time.

    Body frame: origin at the centroid of the fused volume, axes parallel to the world's at scan time.
    """

    gaussians: GaussianSet
    """Surface Gaussians in the body frame, colours refined."""
    particles_m: np.ndarray
    """[P, 3] m, body frame: a cubic lattice of spacing 2 * ``particle_radius_m`` filling the volume."""
    particle_radius_m: float
    """Radius of each particle [m] (half the lattice spacing)."""
    T_world_body: np.ndarray
    """[4, 4] pose of the body frame in the world frame at scan time."""
    surface_points_m: np.ndarray
    """[S, 3] m, body frame: the fused surface (every zero crossing of the field, before thinning)."""
    surface_normals: np.ndarray
    """[S, 3] unit outward normals of ``surface_points_m``, body frame."""
    volume_m3: float
    """Volume of the fused object [m^3] (voxels inside, times the voxel volume)."""
    support_z_m: float | None
    """World height [m] of the support plane used to close the bottom (None: none used)."""
    serials: tuple[str, ...]
    """The views' cameras, in the order of the PSNR lists."""
    psnr_before: list[float] = field(default_factory=list)
    """[dB] per view over the masked pixels, Gaussians coloured from the views (before refinement)."""
    psnr_after: list[float] = field(default_factory=list)
    """[dB] per view over the masked pixels, after refinement."""

    def gaussians_world(self) -> GaussianSet:
        """The Gaussians in the world frame at scan time (``T_world_body`` applied)."""
        dtype = self.gaussians.means.dtype
        return self.gaussians.transformed(torch.as_tensor(self.T_world_body[:3, 3], dtype=dtype),
                                          torch.as_tensor(matrix_to_quat_wxyz(self.T_world_body[:3, :3]), dtype=dtype))


def render_gaussians(gaussians_world: GaussianSet, frame: CameraFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Colours [H, W, 3] and alphas [H, W] of world-frame Gaussians seen by ``frame``'s camera
    (``twin.cameras.CameraFrame``: its intrinsics and ``T_world_camera``), black background."""
    from ..render import rasterization

    viewmats, Ks = camera_tensors([frame.intrinsics], [frame.T_world_camera])
    g = gaussians_world
    colors, _, alphas, _ = rasterization(g.means, g.quats, g.scales, g.opacities, g.colors, viewmats.to(g.means),
                                         Ks.to(g.means), frame.intrinsics.width, frame.intrinsics.height)
    return colors[0], alphas[0, ..., 0]


def _loss_mask(mask: np.ndarray, erode_px: int) -> np.ndarray:
    m = np.asarray(mask, bool)
    if erode_px > 0:
        m = ndimage.binary_erosion(m, np.ones((3, 3), bool), iterations=erode_px)
    return m if m.any() else np.asarray(mask, bool)


def masked_psnr(gaussians_world: GaussianSet, frame: CameraFrame, mask: np.ndarray, erode_px: int = 1) -> float:
    """PSNR [dB] of world-frame Gaussians rendered in ``frame``'s camera against its RGB, over the pixels
    of ``mask`` ([H, W] bool) eroded by ``erode_px`` (black background; peak 1)."""
    with torch.no_grad():
        colors, _ = render_gaussians(gaussians_world, frame)
    m = _loss_mask(mask, erode_px)
    target = np.asarray(frame.rgb, np.float32)[m] / 255.0
    mse = float(np.mean((colors.numpy()[m] - target) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def _thin(points: np.ndarray, normals: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Average the points (and normals) falling in each cell of a ``spacing`` [m] grid."""
    keys = np.floor((points - points.min(axis=0)) / spacing).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    p = np.zeros((len(counts), 3))
    n = np.zeros((len(counts), 3))
    np.add.at(p, inverse, points)
    np.add.at(n, inverse, normals)
    n_norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(n_norm > 1e-9, n / np.maximum(n_norm, 1e-12), np.array([0.0, 0.0, 1.0]))
    return p / counts[:, None], n


def _support_height(views: Sequence[DepthView], cfg: ObjectScanConfig) -> float | None:
    if not cfg.use_support:
        return None
    if cfg.support_z_m is not None:
        return float(cfg.support_z_m)
    z = np.concatenate([masked_world_points(v)[:, 2] for v in views])
    return float(np.percentile(z, cfg.support_percentile))


def _refine(gaussians: GaussianSet, normals: torch.Tensor, views: Sequence[DepthView],
            frames: Sequence[CameraFrame], cfg: ObjectScanConfig, progress: ProgressCallback | None) -> GaussianSet:
    """Adam on the colours (and offsets along ``normals``) of world-frame ``gaussians``."""
    from ..render import rasterization

    g = gaussians
    colors = g.colors.clone().requires_grad_(True)
    offsets = torch.zeros(len(g), dtype=g.means.dtype, requires_grad=cfg.refine_max_offset_m > 0)
    groups = [{"params": [colors], "lr": cfg.refine_lr}]
    if offsets.requires_grad:
        groups.append({"params": [offsets], "lr": 0.1 * cfg.refine_max_offset_m})
    opt = torch.optim.Adam(groups)
    cams = [camera_tensors([f.intrinsics], [f.T_world_camera]) for f in frames]
    masks = [torch.as_tensor(_loss_mask(v.mask, cfg.loss_erode_px)) for v in views]
    targets = [torch.as_tensor(v.rgb) for v in views]
    n_pixels = sum(int(m.sum()) for m in masks)
    for it in range(1, cfg.refine_iterations + 1):
        opt.zero_grad()
        means = g.means + normals * offsets[:, None]
        total = torch.zeros(())
        for (viewmats, Ks), v, m, target in zip(cams, views, masks, targets):
            h, w = v.mask.shape
            rendered = rasterization(means, g.quats, g.scales, g.opacities, colors, viewmats, Ks, w, h).colors[0]
            total = total + ((rendered[m] - target[m]) ** 2).sum()
        loss = total / (3 * n_pixels)
        loss.backward()
        opt.step()
        with torch.no_grad():
            colors.clamp_(0.0, 1.0)
            offsets.clamp_(-cfg.refine_max_offset_m, cfg.refine_max_offset_m)
        if progress is not None:
            progress(it, loss.item())
    with torch.no_grad():
        means = g.means + normals * offsets[:, None]
    return GaussianSet(means.detach(), g.quats, g.scales, g.opacities, colors.detach())


def scan_object(frames: Sequence[CameraFrame], masks: Sequence[np.ndarray], config: ObjectScanConfig | None = None,
                progress: ProgressCallback | None = None) -> ScannedObject:
    """Build a rigid body from masked RGB-D views of one object.

    Args:
        frames: ``twin.cameras.CameraFrame`` of the object from several viewpoints, each with depth
            (metres, 0 = no return) and ``T_world_camera`` (OpenCV axes), pinhole (undistorted).
        masks: one [H, W] bool mask per frame, True on the object's pixels.
        config: ``ObjectScanConfig``.
        progress: called as ``progress(iteration, loss)`` after each refinement step.

    Returns a ``ScannedObject`` (body frame: origin at the volume's centroid, world-aligned axes).

    Raises ``ValueError`` when a frame has no depth or no pose, a mask does not fit its frame, or no
    masked pixel has a depth return.
    """
    cfg = config or ObjectScanConfig()
    views = prepare_views(frames, masks)
    support = _support_height(views, cfg)
    grid = fuse_views(views, cfg.voxel_m, cfg.truncation_m, cfg.margin_m, support, cfg.silhouette_margin_px)
    inside = grid.field < 0
    if not inside.any():
        raise ValueError("the fused volume is empty: the views do not agree on an object")
    points_w, normals = extract_surface(grid)

    # body frame: centroid of the fused volume, world-aligned axes
    origin = grid.origin_m + grid.voxel_m * np.argwhere(inside).mean(axis=0)
    T_world_body = np.eye(4)
    T_world_body[:3, 3] = origin

    # particles: a lattice through the body origin, kept where the field is negative
    sp = cfg.particle_spacing_m
    idx = np.argwhere(inside)
    lo = grid.origin_m + grid.voxel_m * idx.min(axis=0) - origin
    hi = grid.origin_m + grid.voxel_m * idx.max(axis=0) - origin
    axes = [np.arange(math.floor(lo[i] / sp), math.ceil(hi[i] / sp) + 1) * sp for i in range(3)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    particles = lattice[sample_grid(grid, lattice + origin) < 0]

    # surface Gaussians, coloured from the views
    g_spacing = cfg.gaussian_spacing_m or cfg.voxel_m
    g_points, g_normals = _thin(points_w, normals, g_spacing)
    tol = cfg.color_depth_tolerance_m or 0.5 * cfg.truncation_m
    colors, _ = surface_colors(g_points, g_normals, views, tol)
    gauss_w = surfels(g_points, g_normals, g_spacing, colors)
    serials = tuple(v.serial for v in views)
    psnr_before = [masked_psnr(gauss_w, f, v.mask, cfg.loss_erode_px) for f, v in zip(frames, views)]
    if cfg.refine_iterations > 0:
        nrm = torch.as_tensor(g_normals, dtype=gauss_w.means.dtype)
        gauss_w = _refine(gauss_w, nrm, views, frames, cfg, progress)
        psnr_after = [masked_psnr(gauss_w, f, v.mask, cfg.loss_erode_px) for f, v in zip(frames, views)]
    else:
        psnr_after = list(psnr_before)

    offset = torch.as_tensor(origin, dtype=gauss_w.means.dtype)
    gauss_body = GaussianSet(gauss_w.means - offset, gauss_w.quats, gauss_w.scales, gauss_w.opacities,
                             gauss_w.colors)
    return ScannedObject(
        gaussians=gauss_body,
        particles_m=particles,
        particle_radius_m=0.5 * sp,
        T_world_body=T_world_body,
        surface_points_m=points_w - origin,
        surface_normals=normals,
        volume_m3=float(inside.sum()) * grid.voxel_m**3,
        support_z_m=support,
        serials=serials,
        psnr_before=psnr_before,
        psnr_after=psnr_after,
    )


def object_masks(frames: Mapping, occluders: Mapping[str, np.ndarray] | None = None, table_height_m: float = 0.0,
                 min_height_m: float = 0.01, max_height_m: float = 0.15, grow_px: int = 1) -> dict[str, np.ndarray]:
    """Masks [H, W] bool of an object standing on the table, per calibrated frame (serial -> ``CameraFrame``):
    the pixels whose depth puts them between ``min_height_m`` (above the depth noise) and ``max_height_m``
    above the table, less the ``occluders`` (the arm, from the twin's render), cleared of speckle, reduced to
    the largest connected region and grown by ``grow_px`` (so the object's foot, below ``min_height_m``, is
    inside)."""
    import cv2

    from .localize import LocalizerConfig, _block_mask

    seg = LocalizerConfig(segment="height", table_height_m=table_height_m, min_height_m=min_height_m,
                          max_height_m=max_height_m)
    out = {}
    for serial, frame in frames.items():
        hidden = None if occluders is None else occluders.get(serial)
        mask = cv2.morphologyEx(_block_mask(frame, seg, hidden).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n > 1:
            mask = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
        if grow_px:
            mask = cv2.dilate(mask, np.ones((2 * grow_px + 1,) * 2, np.uint8))
        out[serial] = mask.astype(bool) if hidden is None else mask.astype(bool) & ~np.asarray(hidden, dtype=bool)
    return out
