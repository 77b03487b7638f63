"""The workspace's appearance from calibrated camera frames: what `realsim scan` fits.

With the block at rest and the arm where the twin knows it is (its joints are read from the robot), a
few frame sets per camera are averaged and the twin's scene is fitted to them **photometrically through
the differentiable renderer**:

1. the block is found by its height above the table in the depth images, any colour, the arm masked by
   the twin's own render (``twin.perception.localize`` with ``segment="height"``);
2. where the depth puts the table's surface off its nominal height (something lies on it, the table is
   not flat), the table's Gaussians are moved to the measured height;
3. every Gaussian's colour (table, block, pusher, the Panda's links), each camera's white balance (three
   gains, their mean over the cameras fixed at 1) and radial vignetting, and a small planar correction of
   the block's pose are fitted by Adam on a robust (Huber) loss between renders and the averaged frames.
   Colours start from each Gaussian's rendering-weighted mean of the pixels it draws (one backward pass);
   Gaussians no camera sees take the colour of their nearest seen neighbour on the same body.

The result is a ``twin.scene_file.SceneData`` (bodies, the block's tones for colour localisation, the
cameras' vignetting), the block's pose, and per camera the PSNR and images before (the twin's nominal
palette) and after the fit. Units: metres, radians, world frame; RGB in [0, 1]; OpenCV cameras.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..gaussians import GaussianSet
from ..pusht import block_keypoints
from ..scene_file import SceneData
from .localize import LocalizerConfig, localize_block

__all__ = ["SceneScanConfig", "SceneScan", "scan_scene", "average_frames", "psnr", "vignette_map"]


@dataclass(frozen=True)
class SceneScanConfig:
    """Settings of ``scan_scene``."""

    #: Adam iterations on the block's planar pose (depth and back-projected colours), then on the colours,
    #: white balance and vignetting; step sizes: colours (RGB units), log gains, vignetting, pose [m], [rad].
    pose_iterations: int = 30
    iterations: int = 80
    lr_color: float = 0.02
    lr_gain: float = 0.01
    lr_vignetting: float = 0.01
    lr_block_m: float = 0.0003
    lr_block_rad: float = float(np.deg2rad(0.1))
    fit_block_pose: bool = True
    fit_vignetting: bool = True
    max_vignetting: float = 0.6
    huber_delta: float = 0.1
    #: Weight of the depth residual in the pose fit, per metre.
    depth_weight_per_m: float = 10.0
    #: A Gaussian whose summed rendering weight over the cameras is below this is unseen.
    min_weight: float = 0.02
    #: The table's Gaussians move to the depth's height where it differs from nominal by more than this [m],
    #: measured from at least ``height_min_points`` points within half a spacing.
    height_tolerance_m: float = 0.01
    height_min_points: int = 4
    #: ... and by at most this much [m] (farther is not the table: the floor, a wall, the robot's base).
    max_height_change_m: float = 0.1
    #: The arm's and pusher's render, dilated by this many pixels, is masked out of the block's search.
    occluder_dilation_px: int = 2
    localizer: LocalizerConfig = field(default_factory=lambda: LocalizerConfig(segment="height"))

    def __post_init__(self) -> None:
        if self.iterations < 0 or min(self.lr_color, self.lr_gain, self.lr_vignetting) <= 0:
            raise ValueError("SceneScanConfig needs iterations >= 0 and positive step sizes")


@dataclass
class SceneScan:
    """What ``scan_scene`` found: the scene, the block's pose (x [m], y [m], yaw [rad]), per camera the
    PSNR [dB] of the twin's render against the averaged frame before (the scene's own colours, the block at
    its measured pose) and after the fit, the images
    (serial -> (observed, before, after), uint8 RGB [H, W, 3]), the white-balance gains and the time [s]."""

    data: SceneData
    block_pose: np.ndarray
    psnr_before: dict[str, float]
    psnr_after: dict[str, float]
    images: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    gains: dict[str, np.ndarray]
    table_heights_moved: int
    seconds: float


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio [dB] of two images in [0, 1] (over ``mask`` [H, W] when given)."""
    a, b = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in (a, b))
    err = (a - b) ** 2
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def vignette_map(height: int, width: int, k: torch.Tensor | float) -> torch.Tensor:
    """The radial falloff ``1 - k r^2`` [H, W, 1] (r = 1 at the image's corners)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    r2 = ((u - (width - 1) / 2) ** 2 + (v - (height - 1) / 2) ** 2) / (((width - 1) / 2) ** 2 + ((height - 1) / 2) ** 2)
    return (1.0 - k * r2)[..., None]


def average_frames(frame_sets: Sequence[Mapping]) -> dict:
    """One frame per camera from several sets of a still scene: the mean colour and the median of the
    valid depths (0 where no set has one). Frames must be calibrated (``T_world_camera``)."""
    from ..cameras import CameraFrame

    if not frame_sets:
        raise ValueError("scanning needs at least one frame set")
    out = {}
    for serial in frame_sets[0]:
        frames = [fs[serial] for fs in frame_sets if serial in fs]
        f0 = frames[0]
        if f0.T_world_camera is None:
            raise ValueError(f"camera {serial} has no calibrated pose: scanning needs the rig's calibration")
        rgb = np.mean([f.rgb.astype(np.float64) for f in frames], axis=0)
        depth = None
        if f0.depth_m is not None:
            d = np.stack([np.where(np.isfinite(f.depth_m) & (f.depth_m > 0), f.depth_m, np.nan) for f in frames])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # pixels no set has depth for
                depth = np.nan_to_num(np.nanmedian(d, axis=0), nan=0.0).astype(np.float32)
        out[serial] = CameraFrame(serial, np.clip(rgb + 0.5, 0, 255).astype(np.uint8), depth, f0.intrinsics,
                                  f0.T_world_camera, f0.device_time_ms, f0.host_time_ns)
    return out


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def _fit_table_height(table: GaussianSet, frames: Mapping, masks: Mapping[str, np.ndarray], spacing: float,
                      config: SceneScanConfig, keep_out) -> tuple[GaussianSet, int]:  # noqa: ANN001 - shapely geometry
    """Move the table's Gaussians to the depth's height where it is off the nominal table by more than the
    tolerance (pixels in ``masks``, the arm, and points over ``keep_out``, the block's footprint, ignored)."""
    import shapely

    pts = []
    for serial, f in frames.items():
        if f.depth_m is None:
            continue
        z = np.asarray(f.depth_m, dtype=np.float64)
        ok = np.isfinite(z) & (z > 0) & ~masks[serial]
        v, u = np.nonzero(ok)
        K, T = f.intrinsics.K, f.T_world_camera
        cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(len(u))], 1) * z[v, u, None]
        pts.append(cam @ T[:3, :3].T + T[:3, 3])
    if not pts:
        return table, 0
    p = np.concatenate(pts)
    p = p[~shapely.contains_xy(keep_out, p[:, 0], p[:, 1])]
    means = table.means.detach().cpu().numpy().astype(np.float64)
    lo = means[:, :2].min(0) - spacing
    cell = lambda xy: np.floor((xy - lo) / spacing).astype(np.int64)  # noqa: E731
    gi = cell(means[:, :2])
    ny = int(gi[:, 1].max()) + 2
    ci = cell(p[:, :2])
    on_table = np.all((ci >= 0) & (ci <= gi.max(0) + 1), axis=1)  # points beyond the table's grid are not its
    ci, p = ci[on_table], p[on_table]
    keys = ci[:, 0] * ny + ci[:, 1]
    order = np.argsort(keys)
    keys, heights = keys[order], p[order, 2]
    gkeys = gi[:, 0] * ny + gi[:, 1]
    start, end = np.searchsorted(keys, gkeys, "left"), np.searchsorted(keys, gkeys, "right")
    new_z = means[:, 2].copy()
    moved = 0
    for i in np.nonzero(end - start >= config.height_min_points)[0]:
        h = float(np.median(heights[start[i]:end[i]]))
        if config.height_tolerance_m < abs(h - means[i, 2]) <= config.max_height_change_m:
            new_z[i] = h
            moved += 1
    m = table.means.clone()
    m[:, 2] = torch.as_tensor(new_z, dtype=m.dtype)
    return GaussianSet(m, table.quats, table.scales, table.opacities, table.colors), moved


def _fill_unseen(colors: torch.Tensor, seen: torch.Tensor, positions: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Unseen Gaussians take the colour of the nearest seen one in the same group (body); a group that is
    never seen keeps its colours."""
    out = colors.clone()
    for g in torch.unique(groups):
        members = groups == g
        s, u = members & seen, members & ~seen
        if s.any() and u.any():
            nearest = torch.cdist(positions[u], positions[s]).argmin(dim=1)
            out[u] = colors[s][nearest]
    return out


def scan_scene(scene, frame_sets: Sequence[Mapping], body_poses: np.ndarray, link_poses: np.ndarray | None,  # noqa: ANN001
               config: SceneScanConfig = SceneScanConfig(), block_pose: np.ndarray | None = None,
               progress: Callable[[int, int, float], None] | None = None) -> SceneScan:
    """Fit ``scene`` (a ``twin.gaussian_scene.GaussianScene``; not changed: apply the result with
    ``scene.apply_scene(scan.data)``) to ``frame_sets`` of a still workspace (serial -> calibrated
    ``CameraFrame``). ``body_poses`` [2, 7] and ``link_poses``
    [9, 4, 4]: the twin's state with the arm at the robot's joints (the block entry is replaced by the
    block's measured pose, or by ``block_pose`` (x, y, yaw) when given). ``progress(i, n, loss)`` after
    every iteration."""
    from ..render._api import rasterization
    from ..render.scene import SceneRenderer
    from ..rig import camera_tensors
    import shapely

    t0 = time.perf_counter()
    frames = average_frames(frame_sets)
    cams = {s: (f.intrinsics, f.T_world_camera) for s, f in frames.items()}
    renderer = SceneRenderer(scene)
    renderer.set_cameras(cams)
    body_poses = np.asarray(body_poses, dtype=np.float64).copy()
    occluders = renderer.occluder_masks(body_poses, link_poses)
    if config.occluder_dilation_px:
        import cv2

        k = np.ones((2 * config.occluder_dilation_px + 1,) * 2, np.uint8)
        occluders = {s: cv2.dilate(m.astype(np.uint8), k).astype(bool) for s, m in occluders.items()}
    shape = scene.twin.block
    if block_pose is None:
        loc_cfg = replace(config.localizer, table_height_m=scene.twin.physics.table_height_m)
        block_pose = localize_block(frames, shape, loc_cfg, occluders=occluders).pose
    block_pose = np.asarray(block_pose, dtype=np.float64)
    body_poses[0] = [block_pose[0], block_pose[1], scene.twin.physics.table_height_m + 0.5 * shape.thickness_m, *_yaw_quat(block_pose[2])]
    footprint = shapely.Polygon(block_keypoints(shape, block_pose)[0]).buffer(0.015)
    table, moved = _fit_table_height(scene.table, frames, occluders, scene.config.table_spacing_m, config, footprint)

    with torch.no_grad():
        means, quats = renderer.dynamic_gaussians(body_poses[None], None if link_poses is None else np.asarray(link_poses)[None])
    dyn = scene.dynamic
    n_dyn = len(dyn)
    block_idx = renderer.block_index
    block_local = means[0, block_idx] - torch.as_tensor(body_poses[0, :3], dtype=torch.float32)
    all_quats = torch.cat([quats[0], table.quats])
    scales = torch.cat([dyn.scales, table.scales])
    opac = torch.cat([dyn.opacities, table.opacities])
    prior = torch.cat([dyn.colors, table.colors])
    groups = torch.cat([scene.body_ids, torch.full((len(table),), -1)])
    serials = tuple(cams)
    views = {s: camera_tensors([cams[s][0]], [cams[s][1]]) for s in serials}
    obs = {s: torch.as_tensor(frames[s].rgb, dtype=torch.float32) / 255.0 for s in serials}
    obs_depth = {s: (torch.as_tensor(f.depth_m)[..., None], torch.as_tensor(f.depth_m > 0)[..., None].float())
                 for s, f in frames.items() if f.depth_m is not None}
    shift = torch.zeros(2, requires_grad=True)  # the block's planar pose correction: dx, dy [m] ...
    turn = torch.zeros(1, requires_grad=True)  # ... and dyaw [rad]

    def world_means() -> torch.Tensor:
        c, s_ = torch.cos(turn[0]), torch.sin(turn[0])
        rot = torch.stack([torch.stack([c, -s_]), torch.stack([s_, c])])
        moved_xy = block_local[:, :2] @ rot.T + torch.as_tensor(body_poses[0, :2], dtype=torch.float32) + shift
        block = torch.cat([moved_xy, means[0, block_idx, 2:]], dim=1)
        dyn_means = means[0].index_copy(0, block_idx, block)
        return torch.cat([dyn_means, table.means])

    def render(colors: torch.Tensor, serial: str) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB [H, W, 3] and depth [H, W, 1] of the scene with ``colors``, the block moved by (shift, turn)."""
        intr = cams[serial][0]
        view, K = views[serial]
        out = rasterization(world_means(), all_quats, scales, opac, colors, view, K, intr.width, intr.height)
        return out.colors[0], out.depths[0]

    positions = torch.cat([dyn.means, table.means])  # body frames; the table (its own group) in the world's

    def backprojected() -> torch.Tensor:
        """Each Gaussian's rendering-weighted mean of the pixels it draws (unseen: the nearest seen one's)."""
        probe = torch.ones_like(prior, requires_grad=True)
        num = torch.zeros_like(prior)
        weight = torch.zeros_like(prior)
        for s in serials:
            img = render(probe, s)[0]
            num += torch.autograd.grad((img * obs[s]).sum(), probe, retain_graph=True)[0]
            weight += torch.autograd.grad(img.sum(), probe)[0]
        seen = weight[:, 0] > config.min_weight
        start = torch.where(seen[:, None], num / weight.clamp_min(1e-6), prior).clamp(0, 1)
        return _fill_unseen(start, seen, positions, groups)

    total = config.iterations + (config.pose_iterations if config.fit_block_pose else 0)
    if config.fit_block_pose:  # the block's pose first, on depth and the back-projected colours
        start = backprojected()
        opt = torch.optim.Adam([{"params": [shift], "lr": config.lr_block_m}, {"params": [turn], "lr": config.lr_block_rad}])
        for it in range(config.pose_iterations):
            opt.zero_grad()
            loss = 0.0
            for s in serials:
                rgb, depth = render(start, s)
                loss = loss + _huber(rgb - obs[s], config.huber_delta).mean()
                if s in obs_depth:
                    d, ok = obs_depth[s]
                    loss = loss + _huber(config.depth_weight_per_m * (depth - d) * ok, config.huber_delta).mean()
            loss.backward()
            opt.step()
            if progress is not None:
                progress(it + 1, total, float(loss.detach()))
    colors = backprojected().requires_grad_(True)

    with torch.no_grad():
        before = {s: render(prior, s)[0] for s in serials}
    log_gain = torch.zeros(len(serials), 3, requires_grad=True)
    vignetting = torch.zeros(len(serials), requires_grad=True)
    vig_maps = {s: None for s in serials}
    groups_opt = [{"params": [colors], "lr": config.lr_color}, {"params": [log_gain], "lr": config.lr_gain}]
    if config.fit_vignetting:
        groups_opt.append({"params": [vignetting], "lr": config.lr_vignetting})
    opt = torch.optim.Adam(groups_opt)

    def predicted(k: int, s: str) -> torch.Tensor:
        gains = torch.exp(log_gain - log_gain.mean(0, keepdim=True))[k]
        intr = cams[s][0]
        if vig_maps[s] is None:
            vig_maps[s] = vignette_map(intr.height, intr.width, 1.0) - 1.0  # -r^2
        return render(colors, s)[0] * gains * (1.0 + vignetting[k] * vig_maps[s])

    for it in range(config.iterations):
        opt.zero_grad()
        loss = sum(_huber(predicted(k, s) - obs[s], config.huber_delta).mean() for k, s in enumerate(serials))
        loss.backward()
        opt.step()
        with torch.no_grad():
            colors.clamp_(0.0, 1.0)
            vignetting.clamp_(0.0, config.max_vignetting)
        if progress is not None:
            progress(total - config.iterations + it + 1, total, float(loss.detach()))

    with torch.no_grad():
        after = {s: predicted(k, s) for k, s in enumerate(serials)}
        gains = torch.exp(log_gain - log_gain.mean(0, keepdim=True))
    to8 = lambda t: (t.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)  # noqa: E731
    fitted = colors.detach()
    bodies = {}
    for k, name in enumerate(scene.dynamic_names):
        idx = scene.body_ids == k
        g = scene.bodies[name]
        bodies[name] = GaussianSet(g.means, g.quats, g.scales, g.opacities, fitted[:n_dyn][idx])
    bodies["table"] = GaussianSet(table.means, table.quats, table.scales, table.opacities, fitted[n_dyn:])
    top = bodies["block"].means[:, 2] > 0.5 * shape.thickness_m - 1e-3  # the sides are seen at grazing angles
    data = SceneData(bodies=bodies, block_colors=block_tones(bodies["block"].colors[top]),
                     cameras={s: {"vignetting": float(vignetting.detach()[k]), "gains": [float(x) for x in gains[k]]}
                              for k, s in enumerate(serials)},
                     info={"block_shape": {k: float(v) for k, v in shape.__dict__.items()}})
    pose = block_pose + np.array([*shift.detach().numpy(), float(turn.detach()[0])])
    return SceneScan(
        data=data, block_pose=pose,
        psnr_before={s: psnr(before[s], obs[s]) for s in serials},
        psnr_after={s: psnr(after[s], obs[s]) for s in serials},
        images={s: (frames[s].rgb, to8(before[s]), to8(after[s])) for s in serials},
        gains={s: gains[k].numpy() for k, s in enumerate(serials)},
        table_heights_moved=moved, seconds=time.perf_counter() - t0)


def block_tones(colors: torch.Tensor) -> tuple[tuple[float, float, float], ...]:
    """The block's two tones (RGB): the medians of the brighter and the darker half of its Gaussians' colours
    (about equal for a plain block)."""
    c = colors.detach().cpu().numpy().astype(np.float64)
    value = c.max(axis=1)
    bright = c[value >= np.median(value)]
    dark = c[value < np.median(value)] if (value < np.median(value)).any() else bright
    return tuple(tuple(float(x) for x in np.median(part, axis=0)) for part in (bright, dark))


def _huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a < delta, 0.5 * a * a / delta, a - 0.5 * delta)
