"""Global localisation of the T block from calibrated RGB-D frames: the twin's initial block pose.

Visual-force correction converges from a few centimetres and tens of degrees; at the start of an
episode the twin needs a pose that close. The block's colour is segmented in every camera (HSV range),
the segmented pixels are lifted to the world with their depth (or, without depth, intersected with the
plane of the block's top face), kept if they lie on the block's top face, and rasterised on a 2 mm
grid of the table. The T outline is then matched to that footprint: every yaw on a coarse grid around
the footprint's centroid, then a local refinement of (x, y, yaw), scored by intersection over union.

Units: metres, radians; world frame; OpenCV cameras (``T_world_camera``), RGB images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import shapely

from .pusht import TShape, t_outline

__all__ = ["LocalizerConfig", "Localization", "LocalizationError", "localize_block"]


class LocalizationError(RuntimeError):
    """The block could not be found in the frames (not visible, or too few pixels)."""


@dataclass(frozen=True)
class LocalizerConfig:
    """Colour of the block as an HSV box (OpenCV ranges: H 0..179, S and V 0..255); hue may wrap."""

    hue_range: tuple[int, int] = (170, 10)
    min_saturation: int = 110
    min_value: int = 60
    #: Table height [m] and the block's thickness decide which lifted points are on its top face.
    table_height_m: float = 0.0
    grid_m: float = 0.002
    yaw_step_deg: float = 5.0
    min_pixels: int = 15


@dataclass
class Localization:
    """Block pose (x [m], y [m], yaw [rad]), its footprint IoU in [0, 1], and the pixels used."""

    pose: np.ndarray
    iou: float
    pixels: int


def _block_mask(rgb: np.ndarray, cfg: LocalizerConfig) -> np.ndarray:
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0].astype(np.int32), hsv[..., 1], hsv[..., 2]
    lo, hi = cfg.hue_range
    hue_ok = (h >= lo) | (h <= hi) if lo > hi else (h >= lo) & (h <= hi)
    return hue_ok & (s >= cfg.min_saturation) & (v >= cfg.min_value)


def _lift(mask: np.ndarray, depth: np.ndarray | None, K: np.ndarray, T_world_camera: np.ndarray,
          top_z: float) -> np.ndarray:
    """World points [n, 3] of the masked pixels (depth, or the ray's hit on the plane z = top_z)."""
    v, u = np.nonzero(mask)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=np.float64)], axis=1)
    R, t = T_world_camera[:3, :3], T_world_camera[:3, 3]
    if depth is not None:
        z = depth[v, u].astype(np.float64)
        ok = np.isfinite(z) & (z > 0)
        return (rays[ok] * z[ok, None]) @ R.T + t
    dirs = rays @ R.T
    s = (top_z - t[2]) / np.where(np.abs(dirs[:, 2]) > 1e-9, dirs[:, 2], np.nan)
    ok = np.isfinite(s) & (s > 0)
    return t + dirs[ok] * s[ok, None]


def localize_block(frames: Mapping, shape: TShape, config: LocalizerConfig = LocalizerConfig()) -> Localization:
    """Find the block in a frame set (serial -> ``twin.cameras.CameraFrame`` with ``T_world_camera``)."""
    top = config.table_height_m + shape.thickness_m
    pts = []
    pixels = 0
    for serial in frames:
        f = frames[serial]
        if f.T_world_camera is None:
            continue
        mask = _block_mask(f.rgb, config)
        pixels += int(mask.sum())
        p = _lift(mask, f.depth_m, f.intrinsics.K, f.T_world_camera, top)
        pts.append(p[np.abs(p[:, 2] - top) < 0.35 * shape.thickness_m])
    xy = np.concatenate(pts)[:, :2] if pts else np.zeros((0, 2))
    if len(xy) < config.min_pixels:
        raise LocalizationError(f"block not found: {len(xy)} top-face points from {pixels} block-coloured pixels")

    g = config.grid_m
    r = shape.radius_m + 4 * g
    centre = np.median(xy, axis=0)
    n = int(np.ceil(2 * r / g))
    origin = centre - r
    idx = np.floor((xy - origin) / g).astype(int)
    idx = idx[np.all((idx >= 0) & (idx < n), axis=1)]
    occ = np.zeros((n, n), np.uint8)
    occ[idx[:, 1], idx[:, 0]] = 1
    kernel = np.ones((5, 5), np.uint8)
    occ = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, kernel).astype(bool)
    gx, gy = np.meshgrid(origin[0] + (np.arange(n) + 0.5) * g, origin[1] + (np.arange(n) + 0.5) * g)
    outline = t_outline(shape)

    def iou(pose: np.ndarray) -> float:
        c, s = np.cos(pose[2]), np.sin(pose[2])
        poly = shapely.Polygon(outline @ np.array([[c, s], [-s, c]]) + pose[:2])
        m = shapely.contains_xy(poly, gx, gy)
        union = np.count_nonzero(m | occ)
        return np.count_nonzero(m & occ) / union if union else 0.0

    # the footprint's centroid is the T's centre of mass when the whole top face is seen
    cy, cx = np.nonzero(occ)
    start = np.array([origin[0] + (cx.mean() + 0.5) * g, origin[1] + (cy.mean() + 0.5) * g])
    yaws = np.deg2rad(np.arange(0.0, 360.0, config.yaw_step_deg))
    scores = [iou(np.array([*start, y])) for y in yaws]
    best = np.array([*start, yaws[int(np.argmax(scores))]])
    best_score = max(scores)
    step = np.array([0.004, 0.004, np.deg2rad(config.yaw_step_deg) / 2])
    for _ in range(4):  # coordinate descent, halving the step
        improved = True
        while improved:
            improved = False
            for k in range(3):
                for sgn in (-1.0, 1.0):
                    cand = best.copy()
                    cand[k] += sgn * step[k]
                    sc = iou(cand)
                    if sc > best_score:
                        best, best_score, improved = cand, sc, True
        step /= 2
    best[2] = (best[2] + np.pi) % (2 * np.pi) - np.pi
    return Localization(pose=best, iou=float(best_score), pixels=pixels)
