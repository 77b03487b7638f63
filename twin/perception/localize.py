"""Global localisation of the T block from calibrated RGB-D frames: the twin's initial block pose.

Visual-force correction converges from a few centimetres and tens of degrees; at the start of an
episode the twin needs a pose that close. The block's colour is segmented in every camera (HSV range;
``block_color_localizer`` derives it from a scanned block's colours), or, with ``segment="height"``, the
pixels whose depth puts them above the table at the block's height (any colour; what `realsim scan` uses
before it knows the block's colour; the arm must be masked out by ``occluders``), the segmented pixels are lifted to the world with their depth (or, without depth, intersected with the
plane of the block's top face), kept if they lie on the block's top face, and rasterised on a 2 mm
grid of the table. The T outline is then matched to that footprint: every yaw on a coarse grid around
the footprint's centroid, then a local refinement of (x, y, yaw), scored by intersection over union.

Units: metres, radians; world frame; OpenCV cameras (``T_world_camera``), RGB images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..transforms import wrap_angle
from ..pusht import TShape, block_keypoints

__all__ = ["LocalizerConfig", "block_color_localizer", "Localization", "LocalizationError", "localize_block", "refine_in_image", "silhouette_iou",
           "FootprintCheck", "footprint_mismatch"]


class LocalizationError(RuntimeError):
    """The block could not be found in the frames (not visible, or too few pixels)."""


@dataclass(frozen=True)
class LocalizerConfig:
    """How the block's pixels are found: "color", an HSV box (OpenCV ranges: H 0..179, S and V 0..255; hue
    may wrap), or "height", depth above the table between ``min_height_m`` and ``max_height_m``."""

    segment: str = "color"
    hue_range: tuple[int, int] = (170, 10)
    min_saturation: int = 110
    min_value: int = 60
    #: Table height [m] and the block's thickness decide which lifted points are on its top face.
    table_height_m: float = 0.0
    grid_m: float = 0.002
    yaw_step_deg: float = 5.0
    min_pixels: int = 15
    #: Refine the footprint match in the images (silhouette IoU, side faces included).
    refine_in_image: bool = True
    #: Distinct coarse yaws (>= 30 degrees apart) refined as hypotheses.
    yaw_hypotheses: int = 3
    min_height_m: float = 0.01
    max_height_m: float = 0.07

    def __post_init__(self) -> None:
        if self.segment not in ("color", "height"):
            raise ValueError(f"LocalizerConfig.segment must be 'color' or 'height', got {self.segment!r}")
        if not 0 <= self.min_height_m < self.max_height_m:
            raise ValueError("LocalizerConfig needs 0 <= min_height_m < max_height_m")


def block_color_localizer(colors, background=None, base: LocalizerConfig = LocalizerConfig()) -> LocalizerConfig:  # noqa: ANN001
    """``base`` segmenting a block of ``colors`` (RGB in [0, 1], e.g. a scanned block's tones; a ``ValueError``
    when they are too pale to tell from a grey table): hue within
    12 (of 180) of theirs, saturation above 60 % of the palest tone's and brightness above 45 % of the darkest
    tone's (a side in shadow, the second tone of a two-tone block), and the
    saturation threshold raised towards the ``background``'s of a similar hue (RGB [n, 3], e.g. the scanned
    table; their 99th percentile), at most to 90 % of the block's."""
    import colorsys
    from dataclasses import replace

    if not len(colors):
        raise ValueError("block_color_localizer needs at least one colour")
    hsv = np.array([colorsys.rgb_to_hsv(*np.clip(np.asarray(c, dtype=np.float64), 0, 1)) for c in colors])
    if hsv[:, 1].min() < 0.2:
        raise ValueError(f"a block of saturation {hsv[:, 1].min():.2f} (grey, white, black) cannot be found by its colour")
    # the shortest arc of the hue circle that holds every tone: the complement of the largest gap between them
    hues = np.sort(hsv[:, 0] % 1.0)
    gaps = np.diff(np.r_[hues, hues[0] + 1.0])
    k = int(np.argmax(gaps))
    start, arc = hues[(k + 1) % len(hues)], 1.0 - gaps[k]
    hue = 180.0 * ((start + arc / 2) % 1.0)
    half = 12.0 + 90.0 * arc
    lo, hi = int(np.floor(hue - half)) % 180, int(np.ceil(hue + half)) % 180
    if half >= 89.5:  # tones of opposite hues: any hue, by saturation and brightness alone
        lo, hi = 0, 179
    min_sat = 0.6 * hsv[:, 1].min() * 255
    if background is not None and len(background):
        bg = np.array([colorsys.rgb_to_hsv(*np.clip(c, 0, 1)) for c in np.asarray(background, dtype=np.float64)])
        near = np.abs(np.angle(np.exp(2j * np.pi * (bg[:, 0] - hue / 180.0)))) < 2 * np.pi * half / 180.0
        if near.any():  # only background of the block's hue can be mistaken for it
            bg_sat = float(np.percentile(bg[near, 1], 99)) * 255
            min_sat = max(min_sat, min(0.5 * (bg_sat + hsv[:, 1].min() * 255), 0.9 * hsv[:, 1].min() * 255))
    return replace(base, segment="color", hue_range=(lo, hi), min_saturation=int(round(min_sat)),
                   min_value=int(round(0.45 * hsv[:, 2].min() * 255)))


@dataclass
class Localization:
    """Block pose (x [m], y [m], yaw [rad]), its footprint IoU in [0, 1], and the pixels used."""

    pose: np.ndarray
    iou: float
    pixels: int


def _block_mask(frame, cfg: LocalizerConfig, hidden: np.ndarray | None = None) -> np.ndarray:  # noqa: ANN001
    """The block's pixels [H, W] of a calibrated frame (by colour or by height, see ``LocalizerConfig``),
    less the ``hidden`` ones."""
    mask = _height_mask(frame, cfg) if cfg.segment == "height" else _color_mask(frame.rgb, cfg)
    return mask if hidden is None else mask & ~hidden


def _height_mask(frame, cfg: LocalizerConfig) -> np.ndarray:  # noqa: ANN001
    if frame.depth_m is None:
        raise LocalizationError(f"camera {frame.serial}: segmenting by height needs depth")
    z = np.asarray(frame.depth_m, dtype=np.float64)
    h, w = z.shape
    K = frame.intrinsics.K
    v, u = np.mgrid[0:h, 0:w]
    T = frame.T_world_camera
    # world height of each pixel's point: the third row of T applied to the camera-frame point
    height = (T[2, 0] * (u - K[0, 2]) / K[0, 0] + T[2, 1] * (v - K[1, 2]) / K[1, 1] + T[2, 2]) * z + T[2, 3]
    above = height - cfg.table_height_m
    return np.isfinite(z) & (z > 0) & (above > cfg.min_height_m) & (above < cfg.max_height_m)


def _color_mask(rgb: np.ndarray, cfg: LocalizerConfig) -> np.ndarray:
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


def localize_block(frames: Mapping, shape: TShape, config: LocalizerConfig = LocalizerConfig(),
                   hints: Sequence[np.ndarray] = (), occluders: Mapping[str, np.ndarray] | None = None) -> Localization:
    """Find the block in a frame set (serial -> ``twin.cameras.CameraFrame`` with ``T_world_camera``).
    ``hints``: poses (x, y, yaw) worth trying besides the ones the footprint suggests (e.g. the twin's own
    block), refined like them; the pose that explains the images best is returned.
    ``occluders``: serial -> bool [H, W], True where something in front of the table (the arm) hides it:
    those pixels do not count in the silhouette IoU."""
    top = config.table_height_m + shape.thickness_m
    pts = []
    pixels = 0
    views = []  # (block-coloured mask, K, T_world_camera, visible) of the frames that see block colour
    for serial in frames:
        f = frames[serial]
        if f.T_world_camera is None:
            continue
        mask = _block_mask(f, config, _hidden(occluders, serial, f.rgb.shape[:2]) if config.segment == "height" else None)
        pixels += int(mask.sum())
        if mask.any():
            views.append((mask, f.intrinsics.K, f.T_world_camera, _visible(occluders, serial, mask.shape)))
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
    occ_count = np.count_nonzero(occ)
    poly_mask = np.zeros((n, n), np.uint8)

    def iou(pose: np.ndarray) -> float:
        # polygon in grid cells (cell centres at integer + 0.5), rasterised with 1/16-cell precision
        pts = (block_keypoints(shape, pose)[0] - origin) / g - 0.5
        poly_mask[:] = 0
        cv2.fillPoly(poly_mask, [np.round(pts * 16).astype(np.int32)], 1, shift=4)
        m = poly_mask.view(bool)
        inter = np.count_nonzero(m & occ)
        union = np.count_nonzero(m) + occ_count - inter
        return inter / union if union else 0.0

    # the footprint's centroid is the T's centre of mass when the whole top face is seen; the best few
    # distinct yaws on a coarse grid are refined (the T's near-symmetries make the best coarse one wrong
    # when part of the block is hidden), then the hints, and the best explanation of the images wins
    cy, cx = np.nonzero(occ)
    start = np.array([origin[0] + (cx.mean() + 0.5) * g, origin[1] + (cy.mean() + 0.5) * g])
    yaws = np.deg2rad(np.arange(0.0, 360.0, config.yaw_step_deg))
    scores = np.array([iou(np.array([*start, y])) for y in yaws])
    peaks: list[float] = []
    for k in np.argsort(-scores):
        if len(peaks) == config.yaw_hypotheses:
            break
        if all(abs(wrap_angle(yaws[k] - p)) >= np.deg2rad(30.0) for p in peaks):
            peaks.append(float(yaws[k]))
    step = np.array([0.004, 0.004, np.deg2rad(config.yaw_step_deg) / 2])
    candidates = [_coordinate_descent(iou, np.array([*start, y]), step) for y in peaks]
    if not config.refine_in_image:
        best, best_score = max(candidates, key=lambda c: c[1])
        return Localization(pose=_wrapped(best), iou=float(best_score), pixels=pixels)
    starts = [pose for pose, _ in candidates]
    for h in hints:  # as given, and moved onto the footprint keeping its yaw (a block pushed aside)
        starts += [np.asarray(h, dtype=np.float64), np.array([*start, h[2]])]
    best, best_score = max((_refine(views, p, shape, config) for p in starts), key=lambda c: c[1])
    return Localization(pose=_wrapped(best), iou=float(best_score), pixels=pixels)


def _wrapped(pose: np.ndarray) -> np.ndarray:
    out = np.asarray(pose, dtype=np.float64).copy()
    out[2] = wrap_angle(out[2])
    return out


def _coordinate_descent(score: Callable[[np.ndarray], float], start: np.ndarray, step: np.ndarray,
                        rounds: int = 4) -> tuple[np.ndarray, float]:
    """Maximise ``score`` over (x, y, yaw) from ``start``: +-step per coordinate while it improves, then
    halve the step (``rounds`` times). Returns (pose, score)."""
    best = np.asarray(start, dtype=np.float64).copy()
    best_score = score(best)
    step = np.asarray(step, dtype=np.float64).copy()
    for _ in range(rounds):
        improved = True
        while improved:
            improved = False
            for k in range(3):
                for sgn in (-1.0, 1.0):
                    cand = best.copy()
                    cand[k] += sgn * step[k]
                    sc = score(cand)
                    if sc > best_score:
                        best, best_score, improved = cand, sc, True
        step /= 2
    return best, best_score


def _silhouette(shape: TShape, pose: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray, image_hw: tuple[int, int],
                table_height_m: float) -> np.ndarray:
    """uint8 mask [H, W] of the T prism at ``pose`` seen by a pinhole camera (OpenCV convention): the
    union of its projected bottom and top faces (the prism's silhouette for cameras above the table)."""
    xy = block_keypoints(shape, pose)[0]
    R, t = T_world_camera[:3, :3], T_world_camera[:3, 3]
    mask = np.zeros(image_hw, np.uint8)
    for z in (table_height_m, table_height_m + shape.thickness_m):
        p = (np.c_[xy, np.full(len(xy), z)] - t) @ R  # world -> camera: R^T (p - t)
        if np.any(p[:, 2] <= 1e-6):
            continue  # the face crosses the camera plane
        uv = (p[:, :2] / p[:, 2:]) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        cv2.fillPoly(mask, [np.round(uv * 16).astype(np.int32)], 1, shift=4)
    return mask


def _hidden(occluders: Mapping[str, np.ndarray] | None, serial: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Pixels of camera ``serial`` hidden by an occluder (None: none)."""
    visible = _visible(occluders, serial, shape)
    return None if visible is None else ~visible


def _visible(occluders: Mapping[str, np.ndarray] | None, serial: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Pixels of camera ``serial`` not hidden by an occluder (None: all)."""
    if occluders is None or serial not in occluders:
        return None
    hidden = np.asarray(occluders[serial], dtype=bool)
    if hidden.shape != shape:
        raise ValueError(f"camera {serial}: occluder mask {hidden.shape} does not match the frame {shape}")
    return ~hidden


def _views(frames: Mapping, config: LocalizerConfig, occluders: Mapping[str, np.ndarray] | None = None) -> list:
    """(block-coloured mask, K, T_world_camera, visible or None) of the calibrated frames that see block colour."""
    views = []
    for serial in frames:
        f = frames[serial]
        if f.T_world_camera is None:
            continue
        observed = _block_mask(f, config, _hidden(occluders, serial, f.rgb.shape[:2]) if config.segment == "height" else None)
        if observed.any():
            views.append((observed, f.intrinsics.K, f.T_world_camera, _visible(occluders, serial, observed.shape)))
    return views


def _mean_iou(views: list, pose: np.ndarray, shape: TShape, config: LocalizerConfig) -> float:
    total = 0.0
    for observed, K, T, visible in views:
        sil = _silhouette(shape, pose, K, T, observed.shape, config.table_height_m).view(bool)
        if visible is not None:
            sil = sil & visible
        inter = np.count_nonzero(sil & observed)
        union = np.count_nonzero(sil | observed)
        total += inter / union if union else 0.0
    return total / len(views) if views else 0.0


def silhouette_iou(frames: Mapping, pose: np.ndarray, shape: TShape, config: LocalizerConfig = LocalizerConfig(),
                   occluders: Mapping[str, np.ndarray] | None = None) -> float:
    """Intersection over union of the block-coloured pixels and the block's projected silhouette at ``pose``
    (x [m], y [m], yaw [rad], world frame), averaged over the calibrated cameras that see block colour
    (0 when none does); pixels where ``occluders`` (serial -> bool [H, W]) are True do not count."""
    return _mean_iou(_views(frames, config, occluders), np.asarray(pose, dtype=np.float64), shape, config)


def refine_in_image(frames: Mapping, pose: np.ndarray, shape: TShape,
                    config: LocalizerConfig = LocalizerConfig()) -> tuple[np.ndarray, float]:
    """Refine a block pose (x [m], y [m], yaw [rad]) by maximising ``silhouette_iou`` (coordinate descent,
    halving steps from 4 mm and 4 degrees). Returns (pose, that IoU). The arm hiding part of the block
    biases it towards the visible part (a few millimetres)."""
    return _refine(_views(frames, config), np.asarray(pose, dtype=np.float64), shape, config)


def _refine(views: list, pose: np.ndarray, shape: TShape, config: LocalizerConfig) -> tuple[np.ndarray, float]:
    """``refine_in_image`` on block masks already computed (``_views``)."""
    if not views:
        return np.asarray(pose, dtype=np.float64).copy(), 0.0
    best, best_score = _coordinate_descent(lambda p: _mean_iou(views, p, shape, config), np.asarray(pose, dtype=np.float64),
                                           np.array([0.004, 0.004, np.deg2rad(4.0)]))
    return _wrapped(best), best_score


@dataclass
class FootprintCheck:
    """How well a block pose explains the block-coloured pixels of a frame set.

    ``outside``: block-coloured pixels farther than ``margin_px`` from the pose's projected silhouette;
    ``observed``: all block-coloured pixels. Something hiding the block (the arm) removes block-coloured
    pixels but never adds any, so ``outside`` says the pose is wrong whatever the occlusion.
    """

    outside: int
    observed: int

    @property
    def outside_fraction(self) -> float:
        return self.outside / self.observed if self.observed else 0.0


def footprint_mismatch(frames: Mapping, pose: np.ndarray, shape: TShape, config: LocalizerConfig = LocalizerConfig(),
                       margin_px: int = 2) -> FootprintCheck:
    """Compare the block-coloured pixels of ``frames`` (serial -> ``CameraFrame`` with ``T_world_camera``)
    with the silhouette of the block at ``pose`` (x [m], y [m], yaw [rad], world frame): the T prism's
    top and bottom faces projected with each camera's intrinsics (OpenCV convention), dilated by
    ``margin_px``. Cheap (no rendering): meant to run on every frame set."""
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    outside = observed = 0
    for serial in frames:
        f = frames[serial]
        if f.T_world_camera is None:
            continue
        observed_mask = _block_mask(f, config)
        n_obs = int(np.count_nonzero(observed_mask))
        if n_obs == 0:
            continue
        silhouette = _silhouette(shape, pose, f.intrinsics.K, f.T_world_camera, observed_mask.shape, config.table_height_m)
        near = cv2.dilate(silhouette, kernel).astype(bool)
        outside += int(np.count_nonzero(observed_mask & ~near))
        observed += n_obs
    return FootprintCheck(outside=outside, observed=observed)
