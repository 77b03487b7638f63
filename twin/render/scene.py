"""The scene renderer: the twin's Gaussian scene + calibrated cameras -> RGB, depth, alpha (and the
robot's occluder masks) for one world or N worlds in one call.

Everything that draws the twin draws through it: the visual-force correction, the simulated
workspace's cameras, dataset images, shape fitting, and policies' image observations and evaluation
videos. The static table is rendered once per camera and cached; the dynamic Gaussians (block,
pusher, robot links) of every world are rasterized in one batched `twin.render.rasterization` call per
camera (CPU tile rasterizer or gsplat on CUDA, by the device the renderer was given) and composited
over it.

States: ``body_poses`` [2, 7] (block, pusher; x, y, z, qw, qx, qy, qz; world frame, metres) and
``link_poses`` [9, 4, 4] (``T_world_link`` of the Panda's links) for one world, or [N, 2, 7] and
[N, 9, 4, 4] for N worlds. Images: RGB in [0, 1] [H, W, 3], depth [m] and alpha [H, W, 1]; with a world
batch dimension N in front for N worlds. Cameras: serial -> (intrinsics, ``T_world_camera``, OpenCV).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

__all__ = ["SceneRenderer", "composite_over"]

Images = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def composite_over(front: Images, back: Images) -> Images:
    """Composite a render (premultiplied colours [..., 3], expected depth [..., 1], alpha [..., 1]) over
    another that lies entirely behind it (the static table)."""
    c_f, d_f, a_f = front
    c_b, d_b, a_b = back
    t = 1.0 - a_f
    alpha = a_f + t * a_b
    depth = (a_f * d_f + t * a_b * d_b) / alpha.clamp_min(1e-6)
    return c_f + t * c_b, depth, alpha


class SceneRenderer:
    """Renders a `twin.gaussian_scene.GaussianScene` for calibrated cameras, one or N worlds per call.

    Args:
        scene: the twin's Gaussians (table static; block, pusher, robot dynamic).
        device: torch device, resolved by the caller ("cpu" renders on the CPU, "cuda" with gsplat).
    """

    def __init__(self, scene, device: str | torch.device = "cpu") -> None:  # noqa: ANN001 - GaussianScene
        self.scene = scene
        self.device = torch.device(device)
        self._cameras: dict[str, tuple[object, np.ndarray]] = {}
        self._views: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._static: dict[str, Images] = {}
        self._load_dynamic()

    def _load_dynamic(self) -> None:
        self.dynamic = self.scene.dynamic.to(self.device)
        #: indices of the block's Gaussians among the dynamic ones (what the correction moves)
        self.block_index = torch.nonzero(self.scene.correctable_mask).squeeze(1).to(self.device)

    def reload_scene(self) -> None:
        """Take up changes made to the scene's Gaussians (e.g. ``GaussianScene.apply_scene``): the dynamic
        bodies and the cached table renders."""
        self._load_dynamic()
        if self._cameras:
            self.set_cameras(self._cameras)

    def set_block_shape(self, shape) -> None:  # noqa: ANN001 - twin.pusht.TShape
        """Give the scene's block other dimensions (e.g. the measured real block's)."""
        self.scene.set_block_shape(shape)
        self._load_dynamic()

    # ------------------------------------------------------------------ cameras
    def set_cameras(self, cameras: Mapping[str, tuple[object, np.ndarray]]) -> None:
        """Calibrated cameras: serial -> (``CameraIntrinsics``, ``T_world_camera`` [4, 4]). Renders and caches
        the static table for each."""
        from ..rig import camera_tensors
        from ._api import rasterization

        if not cameras:
            raise ValueError("set_cameras needs at least one camera")
        self._cameras = {s: (i, np.asarray(T, dtype=np.float64)) for s, (i, T) in cameras.items()}
        self._views = {s: camera_tensors([i], [T], self.device) for s, (i, T) in self._cameras.items()}
        self._static.clear()
        table = self._table = self.scene.table.to(self.device)
        for serial, (intr, _) in self._cameras.items():
            view, K = self._views[serial]
            with torch.no_grad():
                out = rasterization(*table.tensors(), view, K, intr.width, intr.height)
            self._static[serial] = (out.colors[0], out.depths[0], out.alphas[0])

    @property
    def camera_serials(self) -> tuple[str, ...]:
        return tuple(self._cameras)

    def camera(self, serial: str) -> tuple[object, np.ndarray]:
        """(intrinsics, ``T_world_camera``) of a camera."""
        return self._cameras[serial]

    def static(self, serial: str) -> Images:
        """The cached render of the static table for a camera: (RGB [H, W, 3], depth, alpha [H, W, 1])."""
        return self._static[serial]

    # ------------------------------------------------------------------ rendering
    def dynamic_gaussians(self, body_poses: np.ndarray, link_poses: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """World-frame means [N, G, 3] and rotations [N, G, 4] (w, x, y, z) of the dynamic Gaussians of N
        world states (``body_poses`` [N, 2, 7], ``link_poses`` [N, 9, 4, 4] or None), on the device."""
        poses = self.scene.body_poses(body_poses, link_poses)
        means, quats = self.scene.world_gaussians(poses)
        return means.to(self.device), quats.to(self.device)

    def render(self, body_poses: np.ndarray, link_poses: np.ndarray | None, serials: tuple[str, ...] | None = None,
               block_offset: torch.Tensor | None = None,
               camera_poses: Mapping[str, np.ndarray] | None = None) -> dict[str, Images]:
        """Render one world (``body_poses`` [2, 7], ``link_poses`` [9, 4, 4]) -> serial -> (RGB [H, W, 3],
        depth [H, W, 1], alpha [H, W, 1]), or N worlds ([N, 2, 7], [N, 9, 4, 4]) -> the same with [N, ...]
        in front, in one rasterization per camera. ``block_offset`` [B, 3] (one world) moves the block's
        Gaussians in the world frame [m] (differentiable). ``camera_poses``: serial -> ``T_world_camera``
        [N, 4, 4] per world (a camera that moves, e.g. on the wrist), replacing the camera's own pose for
        this call; the table is then rendered with the dynamic Gaussians, not taken from the cache."""
        from ._api import rasterization

        body_poses = np.asarray(body_poses, dtype=np.float64)
        single = body_poses.ndim == 2
        bp = body_poses[None] if single else body_poses
        lp = None if link_poses is None else (np.asarray(link_poses)[None] if single else np.asarray(link_poses))
        means, quats = self.dynamic_gaussians(bp, lp)
        if block_offset is not None:
            if not single:
                raise ValueError("block_offset moves the block of one world")
            means = means.index_add(1, self.block_index, block_offset[None])
        g = self.dynamic
        out = {}
        camera_poses = camera_poses or {}
        for serial in serials or self.camera_serials:
            intr, _ = self._cameras[serial]
            view, K = self._views[serial]
            if serial in camera_poses:
                view, K = self._moving_view(serial, camera_poses[serial], len(bp))
            r = rasterization(means, quats, g.scales, g.opacities, g.colors, view, K, intr.width, intr.height)
            front = (r.colors[:, 0], r.depths[:, 0], r.alphas[:, 0])  # [N, H, W, .]: one camera
            if serial in camera_poses:
                table = self._table.tensors()
                t_means = table[0].expand(len(bp), -1, -1)
                s = rasterization(t_means, *table[1:], view, K, intr.width, intr.height)
                back: Images = (s.colors[:, 0], s.depths[:, 0], s.alphas[:, 0])
            else:
                back = self._static[serial]
            images = composite_over(front, back)
            out[serial] = tuple(x[0] for x in images) if single else images
        return out

    def block_crop(self, serial: str, block_means: torch.Tensor, reach_m: float) -> tuple[int, int, int, int] | None:
        """The pixels of a fixed camera that the block's Gaussians (world-frame means [B, 3]) can touch when
        moved by up to ``reach_m`` [m] in any direction: (x0, y0, width, height), its corner on a multiple of
        16 px (both backends' tiles) so a crop renders what the whole image has there (up to float rounding). None when
        a block Gaussian is behind or near the camera (render the whole image then)."""
        intr, _ = self._cameras[serial]
        view, K = self._views[serial]
        cam = block_means.detach().to(view) @ view[0, :3, :3].T + view[0, :3, 3]
        z = cam[:, 2]
        if float(z.min()) < 0.05:
            return None
        uv = (cam[:, :2] / z[:, None]) @ K[0, :2, :2].T + K[0, :2, 2]
        # reach and the Gaussians' own extent (3.33 sigma, see rasterization) plus the 2D dilation, in pixels
        extent_m = reach_m + 3.33 * float(self.dynamic.scales[self.block_index].max())
        focal = float(K[0, :2, :2].diagonal().abs().max())
        margin = focal * extent_m / float(z.min()) + 3.0
        lo = torch.floor(uv.min(dim=0).values - margin).clamp_min(0)
        hi = torch.ceil(uv.max(dim=0).values + margin)
        x0, y0 = (int(lo[0]) // 16) * 16, (int(lo[1]) // 16) * 16
        x1, y1 = min(int(hi[0]), intr.width), min(int(hi[1]), intr.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1 - x0, y1 - y0

    def render_block_moves(self, body_poses: np.ndarray, link_poses: np.ndarray | None, offsets: torch.Tensor,
                           crops: Mapping[str, tuple[int, int, int, int] | None]) -> dict[str, Images]:
        """One world (``body_poses`` [2, 7], ``link_poses`` [9, 4, 4]) rendered K times, the block's Gaussians
        moved by ``offsets`` [K, B, 3] (world frame, m), for fixed cameras, each only within its crop
        (x0, y0, width, height; None = the whole image; see ``block_crop``): serial -> images [K, h, w, .],
        one rasterization per camera (no gradient). Outside a crop from ``block_crop`` the block's moves
        change nothing; inside it holds the values of ``render``'s pixels there (up to float rounding)."""
        from ._api import rasterization

        means, quats = self.dynamic_gaussians(np.asarray(body_poses, dtype=np.float64)[None],
                                              None if link_poses is None else np.asarray(link_poses)[None])
        k = len(offsets)
        moved = means.expand(k, -1, -1).index_add(1, self.block_index, offsets.to(means))
        g = self.dynamic
        out = {}
        with torch.no_grad():
            for serial, crop in crops.items():
                intr, _ = self._cameras[serial]
                view, K = self._views[serial]
                x0, y0, w, h = crop if crop is not None else (0, 0, intr.width, intr.height)
                K = K.clone()
                K[:, 0, 2] -= x0
                K[:, 1, 2] -= y0
                r = rasterization(moved, quats.expand(k, -1, -1), g.scales, g.opacities, g.colors, view, K, w, h)
                back = tuple(x[y0:y0 + h, x0:x0 + w] for x in self._static[serial])
                out[serial] = composite_over((r.colors[:, 0], r.depths[:, 0], r.alphas[:, 0]), back)
        return out

    def _moving_view(self, serial: str, T_world_camera: np.ndarray, worlds: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-world ``viewmats`` [N, 1, 4, 4] and ``Ks`` [N, 1, 3, 3] of a camera posed per world."""
        from ..rig import camera_tensors

        T = np.asarray(T_world_camera, dtype=np.float64).reshape(-1, 4, 4)
        if len(T) != worlds:
            raise ValueError(f"camera {serial}: {len(T)} poses for {worlds} worlds")
        intr, _ = self._cameras[serial]
        view, K = camera_tensors([intr] * worlds, list(T), self.device)
        return view[:, None], K[:, None]

    def occluder_masks(self, body_poses: np.ndarray, link_poses: np.ndarray | None,
                       min_alpha: float = 0.5) -> dict[str, np.ndarray]:
        """Where the robot and the pusher of one world state (``body_poses`` [2, 7], ``link_poses``
        [9, 4, 4]) hide what lies behind them, for every camera: serial -> bool [H, W]."""
        from ._api import rasterization

        means, quats = self.dynamic_gaussians(np.asarray(body_poses)[None],
                                              None if link_poses is None else np.asarray(link_poses)[None])
        g = self.dynamic
        opacities = g.opacities.clone()
        opacities[self.block_index] = 0.0  # everything but the block
        out = {}
        with torch.no_grad():
            for serial, (intr, _) in self._cameras.items():
                view, K = self._views[serial]
                r = rasterization(means[0], quats[0], g.scales, opacities, g.colors, view, K, intr.width, intr.height)
                out[serial] = (r.alphas[0, ..., 0] > min_alpha).cpu().numpy()
        return out
