"""How well a scan recovered the simulated workspace's hidden look: the scores that tests and
``benchmarks/scan.py`` quote (they read the truth, which the product never does).

Colours are RGB in [0, 1]; positions metres, world frame; PSNR in dB.
"""

from __future__ import annotations

import numpy as np

from twin.rig import VirtualCameraConfig

from .world import TruthRig, WorldConfig

__all__ = ["HELD_OUT_VIEW", "block_color_error", "held_out_table_psnr", "t_block_chamfer_m", "camera_errors"]

#: A view from above that no camera of the rig has: the table's texture is scored there.
HELD_OUT_VIEW = VirtualCameraConfig("held-out", (0.56, -0.08, 0.85), (0.54, 0.0, 0.0))


def block_color_error(rig: TruthRig, config: WorldConfig, block) -> tuple[np.ndarray, float]:  # noqa: ANN001 - GaussianSet
    """The scanned block's top-face colour against the drawn one at the same Gaussians: per-channel relative
    error [3] after the exposure gain (one factor for all channels, the frames' exposure and the fit's
    gauge), and that gain. The truth is taken as the cameras would see it on average (their mean white
    balance)."""
    from .appearance import block_colors_at

    thickness = rig.truth.block.thickness_m
    means = block.means.detach().cpu().numpy()
    top = means[:, 2] > 0.5 * thickness - 1e-3
    truth = block_colors_at(rig.look, means, thickness, config.appearance.block.stripe_period_m)[top].mean(0)
    if rig.look.cameras:
        truth = truth * np.prod([c.gains for c in rig.look.cameras.values()], axis=0) ** (1 / len(rig.look.cameras))
    ratio = block.colors.detach().cpu().numpy()[top].mean(0) / truth
    gain = float(ratio.mean())
    return ratio / gain - 1.0, gain


def held_out_table_psnr(rig: TruthRig, twin_scene, body_poses: np.ndarray, link_poses: np.ndarray,  # noqa: ANN001
                        view: VirtualCameraConfig = HELD_OUT_VIEW) -> float:
    """PSNR [dB] of the twin's table against the truth's in a view no scan camera had, over the table
    where nothing stood during the scan (the truth state ``body_poses``, ``link_poses``), after one gain per
    channel (the held-out camera's own white balance)."""
    import cv2

    from twin.perception.scan import psnr
    from twin.render.scene import SceneRenderer

    truth_view, twin_view = SceneRenderer(rig.renderer.scene), SceneRenderer(twin_scene)
    for r in (truth_view, twin_view):
        r.set_cameras({view.serial: (view.intrinsics, view.T_world_camera)})
    truth_rgb, _, truth_alpha = (t.numpy() for t in truth_view.static(view.serial))
    twin_rgb = twin_view.static(view.serial)[0].numpy()
    full = truth_view.render(body_poses, link_poses)[view.serial][0].numpy()
    covered = cv2.dilate((np.abs(full - truth_rgb).max(-1) > 0.02).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    table = (truth_alpha[..., 0] > 0.99) & ~covered
    if table.mean() < 0.1:
        raise ValueError(f"the held-out view sees too little of the table ({table.mean():.0%})")
    gain = (truth_rgb[table] * twin_rgb[table]).sum(0) / (twin_rgb[table] ** 2).sum(0)
    return psnr(truth_rgb, twin_rgb * gain, table)


def t_block_chamfer_m(points_world: np.ndarray, rig: TruthRig, block_pose: np.ndarray, spacing_m: float = 0.001) -> float:
    """Symmetric Chamfer distance [m] (mean of both directions) between scanned surface points [n, 3]
    (world frame) and the truth's T block at ``block_pose`` (x, y, yaw) on the table: its top face and
    sides sampled every ``spacing_m`` (the bottom, on the table, is never seen)."""
    import shapely
    from scipy.spatial import cKDTree

    from twin.pusht import block_keypoints

    shape = rig.truth.block
    z0 = rig.truth.physics.table_height_m
    outline = block_keypoints(shape, np.asarray(block_pose))[0]
    poly = shapely.Polygon(outline)
    lo, hi = outline.min(0), outline.max(0)
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], spacing_m), np.arange(lo[1], hi[1], spacing_m))
    inside = shapely.contains_xy(poly, gx.ravel(), gy.ravel())
    top = np.c_[gx.ravel()[inside], gy.ravel()[inside], np.full(inside.sum(), z0 + shape.thickness_m)]
    sides = []
    for a, b in zip(outline, np.roll(outline, -1, axis=0)):
        n = max(2, int(np.linalg.norm(b - a) / spacing_m))
        edge = a + np.linspace(0, 1, n)[:, None] * (b - a)
        for z in np.arange(z0, z0 + shape.thickness_m, spacing_m):
            sides.append(np.c_[edge, np.full(n, z)])
    truth = np.concatenate([top, *sides])
    points = np.asarray(points_world, dtype=np.float64)
    d_scan = cKDTree(truth).query(points)[0]
    d_truth = cKDTree(points).query(truth)[0]
    return float(0.5 * (d_scan.mean() + d_truth.mean()))


def camera_errors(config: WorldConfig, cameras: dict) -> dict[str, dict[str, float]]:
    """How far a calibration (serial -> (intrinsics, ``T_world_camera``)) is from the truth's rig, per camera:
    the pose error (``mm``, ``deg``) and the mean reprojection error [px] of a grid of points on the
    workspace's table (what the twin's images depend on: a focal-length error is partly made good by a
    camera moved along its axis), and ``table_mm``: how far from each of those points the calibration puts
    the table point that the true camera sees there [mm] (the error of a position read off one camera)."""
    from scipy.spatial.transform import Rotation

    ws = config.twin.workspace
    grid = np.stack(np.meshgrid(np.linspace(*ws.x_range_m, 20), np.linspace(*ws.y_range_m, 20)), -1).reshape(-1, 2)
    points = np.c_[grid, np.full(len(grid), config.twin.physics.table_height_m), np.ones(len(grid))]

    def project(intr, T) -> np.ndarray:  # noqa: ANN001
        pc = (np.linalg.inv(T) @ points.T).T[:, :3]
        return np.c_[intr.fx * pc[:, 0] / pc[:, 2] + intr.cx, intr.fy * pc[:, 1] / pc[:, 2] + intr.cy]

    def on_table(intr, T, uv: np.ndarray) -> np.ndarray:  # noqa: ANN001 - pixels -> where their rays meet the table
        rays = np.c_[(uv[:, 0] - intr.cx) / intr.fx, (uv[:, 1] - intr.cy) / intr.fy, np.ones(len(uv))] @ T[:3, :3].T
        depth = (config.twin.physics.table_height_m - T[2, 3]) / rays[:, 2]
        return T[:3, 3] + depth[:, None] * rays

    out = {}
    for cam in config.active_cameras:
        intr, T = cameras[cam.serial]
        T_true = cam.T_world_camera
        angle = np.linalg.norm(Rotation.from_matrix(T[:3, :3] @ T_true[:3, :3].T).as_rotvec())
        seen = project(cam.intrinsics, T_true)
        out[cam.serial] = {"mm": float(1e3 * np.linalg.norm(T[:3, 3] - T_true[:3, 3])), "deg": float(np.rad2deg(angle)),
                           "px": float(np.linalg.norm(project(intr, T) - seen, axis=1).mean()),
                           "table_mm": float(1e3 * np.linalg.norm(on_table(intr, T, seen) - points[:, :3], axis=1).mean())}
    return out
