"""Depth fusion for the object scan: masked RGB-D views fused into one signed distance grid, its
surface, and the colours the views give that surface.

The grid holds a truncated signed distance (TSDF, in units of the truncation distance: -1 deep inside,
+1 free space, 0 on the surface) averaged over views, KinectFusion-style: a voxel in view of a masked
pixel with depth d, at camera depth z, takes ``min(1, (d - z) / truncation)`` when ``d - z >=
-truncation``. Two rules close the volume where no depth ever reaches:

- silhouette carving: a voxel that projects outside a view's mask dilated by ``silhouette_margin_px``
  is free space, whatever its TSDF says; a voxel with no TSDF sample is free space when it projects
  outside any view's depth silhouette (the masked pixels with a depth return, enclosed holes filled),
  and inside otherwise (hidden behind the object's surface from every camera that sees it);
- the support: with a ``support_z_m``, nothing below that world height belongs to the object (the
  field is intersected with the half space above the plane, which also closes the unseen bottom).

Units: metres; world frame (z up); OpenCV cameras (x right, y down, z forward), ``T_world_camera``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from calibration import CameraIntrinsics

if TYPE_CHECKING:
    from ..cameras import CameraFrame

__all__ = ["DepthView", "SignedDistanceGrid", "prepare_views", "fuse_views", "extract_surface", "sample_grid",
           "surface_colors", "masked_world_points"]


@dataclass(frozen=True, eq=False)
class DepthView:
    """One masked RGB-D view, validated: what the fusion reads of a ``CameraFrame`` and its mask."""

    serial: str
    rgb: np.ndarray
    """[H, W, 3] float32 RGB in [0, 1]."""
    depth_m: np.ndarray
    """[H, W] float32 m along the camera z axis; 0 = no return."""
    mask: np.ndarray
    """[H, W] bool, the object's pixels."""
    intrinsics: CameraIntrinsics
    """Pinhole intrinsics of the image (no distortion)."""
    K: np.ndarray
    """[3, 3] pinhole intrinsics, OpenCV pixel centres (integers), px."""
    T_world_camera: np.ndarray
    """[4, 4] camera pose in the world frame, OpenCV axes."""


@dataclass(frozen=True, eq=False)
class SignedDistanceGrid:
    """The fused field on a regular world-aligned grid."""

    field: np.ndarray
    """[X, Y, Z] float32 signed distance in truncation units, clipped to [-1, 1]: < 0 inside the object."""
    weight: np.ndarray
    """[X, Y, Z] int32 number of depth samples averaged into each voxel (0: carved or hidden only)."""
    origin_m: np.ndarray
    """[3] m, world position of voxel (0, 0, 0)'s centre."""
    voxel_m: float
    """Voxel edge [m]."""
    truncation_m: float
    """Truncation distance [m] (one field unit)."""

    def centers(self) -> np.ndarray:
        """[X, Y, Z, 3] world positions [m] of the voxel centres."""
        axes = [self.origin_m[i] + self.voxel_m * np.arange(n) for i, n in enumerate(self.field.shape)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def prepare_views(frames: Sequence[CameraFrame], masks: Sequence[np.ndarray]) -> list[DepthView]:
    """Validate ``frames`` (``twin.cameras.CameraFrame``) and their ``masks`` ([H, W] bool, object pixels)
    and convert them to ``DepthView``. Raises ``ValueError`` for a frame without depth or pose, a
    distorted camera, a mask of the wrong shape, or when no masked pixel has a depth return."""
    if len(frames) == 0:
        raise ValueError("the object scan needs at least one frame")
    if len(masks) != len(frames):
        raise ValueError(f"need one mask per frame, got {len(masks)} masks for {len(frames)} frames")
    views, n_points = [], 0
    for frame, mask in zip(frames, masks):
        name = getattr(frame, "serial", "?")
        if frame.depth_m is None:
            raise ValueError(f"frame of camera {name!r} has no depth: the object scan needs RGB-D frames")
        if frame.T_world_camera is None:
            raise ValueError(f"frame of camera {name!r} has no T_world_camera: calibrate the camera first")
        if frame.intrinsics.has_distortion:
            raise ValueError(f"camera {name!r} has lens distortion: undistort its frames before scanning")
        m = np.asarray(mask)
        if m.shape != frame.depth_m.shape:
            raise ValueError(f"mask of camera {name!r} is {m.shape}, its image is {frame.depth_m.shape}")
        m = m.astype(bool)
        if not m.any():
            raise ValueError(f"mask of camera {name!r} is empty: every view must see the object "
                             f"(an empty silhouette would carve the whole volume); drop the frame")
        depth = np.asarray(frame.depth_m, dtype=np.float32)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        n_points += int(np.count_nonzero(m & (depth > 0)))
        views.append(DepthView(str(name), np.asarray(frame.rgb, dtype=np.float32) / 255.0, depth, m, frame.intrinsics,
                               frame.intrinsics.K.astype(np.float64), np.asarray(frame.T_world_camera, np.float64)))
    if n_points == 0:
        raise ValueError("no masked pixel has a depth return: nothing of the object to scan "
                         "(is the object out of the depth camera's range?)")
    return views


def masked_world_points(view: DepthView) -> np.ndarray:
    """[n, 3] world points [m] of the view's masked pixels with a depth return."""
    v, u = np.nonzero(view.mask & (view.depth_m > 0))
    z = view.depth_m[v, u].astype(np.float64)
    K = view.K
    p_cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)
    return p_cam @ view.T_world_camera[:3, :3].T + view.T_world_camera[:3, 3]


def _project(view: DepthView, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera depth z [m], pixel column and row (rounded) and in-image flag of world ``points`` [n, 3]."""
    T_cw = np.linalg.inv(view.T_world_camera)
    p = points @ T_cw[:3, :3].T + T_cw[:3, 3]
    z = p[:, 2]
    zs = np.where(z > 1e-6, z, 1.0)
    u = np.rint(view.K[0, 0] * p[:, 0] / zs + view.K[0, 2]).astype(np.int64)
    v = np.rint(view.K[1, 1] * p[:, 1] / zs + view.K[1, 2]).astype(np.int64)
    h, w = view.mask.shape
    inside = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    return z, np.clip(u, 0, w - 1), np.clip(v, 0, h - 1), inside


def _depth_silhouette(view: DepthView) -> np.ndarray:
    """[H, W] bool: the masked pixels with a depth return, small gaps closed and enclosed holes filled.
    Masked pixels along the mask's border without depth (mixed pixels, edge dropouts) are left out."""
    valid = view.mask & (view.depth_m > 0)
    closed = ndimage.binary_closing(valid, np.ones((3, 3), bool), border_value=0)
    return ndimage.binary_fill_holes(closed) & view.mask


def fuse_views(views: Sequence[DepthView], voxel_m: float, truncation_m: float, margin_m: float,
               support_z_m: float | None, silhouette_margin_px: int = 1) -> SignedDistanceGrid:
    """Fuse ``views`` into a signed distance grid of ``voxel_m`` [m] over the bounding box of their masked
    points plus ``margin_m`` [m] (world frame). See the module docstring for the field's rules."""
    pts = np.concatenate([masked_world_points(v) for v in views])
    lo, hi = pts.min(axis=0) - margin_m, pts.max(axis=0) + margin_m
    if support_z_m is not None:
        lo[2] = min(lo[2], support_z_m - 2 * voxel_m)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / voxel_m).astype(int) + 1)
    if np.prod(shape) > 16_000_000:
        raise ValueError(f"the scan grid would have {shape} voxels: the masked points span {hi - lo} m; "
                         f"check the masks or use a coarser voxel")
    grid = SignedDistanceGrid(np.zeros(shape, np.float32), np.zeros(shape, np.int32), lo, float(voxel_m),
                              float(truncation_m))
    centers = grid.centers().reshape(-1, 3)
    tsdf_sum = np.zeros(len(centers))
    weight = np.zeros(len(centers), np.int32)
    carved = np.zeros(len(centers), bool)  # outside a dilated silhouette: free space
    outside = np.zeros(len(centers), bool)  # outside a silhouette: free space unless depth says otherwise
    seen = np.zeros(len(centers), bool)
    structure = np.ones((3, 3), bool)
    for view in views:
        z, u, v, inside = _project(view, centers)
        mask = view.mask
        if silhouette_margin_px > 0:
            mask = ndimage.binary_dilation(mask, structure, iterations=silhouette_margin_px)
        seen |= inside
        carved |= inside & ~mask[v, u]
        outside |= inside & ~_depth_silhouette(view)[v, u]
        d = view.depth_m[v, u].astype(np.float64)
        sdf = d - z
        sample = inside & view.mask[v, u] & (d > 0) & (sdf >= -truncation_m)
        tsdf_sum[sample] += np.minimum(1.0, sdf[sample] / truncation_m)
        weight[sample] += 1
    field = np.where(weight > 0, tsdf_sum / np.maximum(weight, 1), np.where(seen & ~outside, -1.0, 1.0))
    field[carved] = 1.0
    if support_z_m is not None:
        field = np.maximum(field, (support_z_m - centers[:, 2]) / truncation_m)
    field = np.clip(field, -1.0, 1.0).astype(np.float32).reshape(shape)
    return SignedDistanceGrid(field, weight.reshape(shape), lo, float(voxel_m), float(truncation_m))


def extract_surface(grid: SignedDistanceGrid) -> tuple[np.ndarray, np.ndarray]:
    """The zero level set of ``grid.field`` as points: every sign change between two voxels adjacent along
    x, y or z gives one point, linearly interpolated between their centres.

    Returns world points [n, 3] m and unit outward normals [n, 3] (the field's gradient there).
    """
    f = grid.field.astype(np.float64)
    gradient = np.stack(np.gradient(f, grid.voxel_m), axis=-1)
    points, normals = [], []
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        fa, fb = f[tuple(a)], f[tuple(b)]
        cross = (fa < 0) != (fb < 0)
        idx = np.argwhere(cross)
        if len(idx) == 0:
            continue
        va, vb = fa[cross], fb[cross]
        t = va / (va - vb)
        p = grid.origin_m + grid.voxel_m * idx.astype(np.float64)
        p[:, axis] += t * grid.voxel_m
        ga = gradient[tuple(a)][cross]
        gb = gradient[tuple(b)][cross]
        points.append(p)
        normals.append((1 - t)[:, None] * ga + t[:, None] * gb)
    if not points:
        raise ValueError("the fused volume has no surface: the views do not agree on an object")
    pts, nrm = np.concatenate(points), np.concatenate(normals)
    norm = np.linalg.norm(nrm, axis=1, keepdims=True)
    fallback = np.tile([0.0, 0.0, 1.0], (len(nrm), 1))
    nrm = np.where(norm > 1e-9, nrm / np.maximum(norm, 1e-12), fallback)
    return pts, nrm


def sample_grid(grid: SignedDistanceGrid, points: np.ndarray) -> np.ndarray:
    """The field trilinearly interpolated at world ``points`` [n, 3] m; +1 (free space) outside the grid."""
    return ndimage.map_coordinates(grid.field, ((points - grid.origin_m) / grid.voxel_m).T, order=1,
                                   mode="constant", cval=1.0)


def surface_colors(points: np.ndarray, normals: np.ndarray, views: Sequence[DepthView],
                   depth_tolerance_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Colours [n, 3] RGB in [0, 1] of world surface ``points`` [n, 3] m with outward ``normals`` [n, 3],
    from every view that sees them: a masked pixel whose depth is within ``depth_tolerance_m`` [m] of the
    point's camera depth, weighted by the cosine between the normal and the direction to the camera.
    Points no view sees take the colour of the nearest seen point (grey if none is seen).

    Returns the colours and ``seen`` [n] bool.
    """
    acc = np.zeros((len(points), 3))
    wsum = np.zeros(len(points))
    for view in views:
        z, u, v, inside = _project(view, points)
        d = view.depth_m[v, u]
        visible = inside & view.mask[v, u] & (d > 0) & (np.abs(d - z) <= depth_tolerance_m)
        to_cam = view.T_world_camera[:3, 3] - points
        cos = np.einsum("ij,ij->i", normals, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-12)
        w = np.where(visible, np.clip(cos, 0.0, 1.0), 0.0)
        acc += w[:, None] * view.rgb[v, u].astype(np.float64)
        wsum += w
    seen = wsum > 1e-6
    colors = np.full((len(points), 3), 0.5)
    colors[seen] = acc[seen] / wsum[seen, None]
    if seen.any() and not seen.all():
        _, nearest = cKDTree(points[seen]).query(points[~seen])
        colors[~seen] = colors[seen][nearest]
    return np.clip(colors, 0.0, 1.0), seen
