"""Image observations rendered from the twin: the twin's state of N worlds -> uint8 RGB images of the
policy's viewpoints, in one batched `twin.render.scene.SceneRenderer` call per viewpoint.

One renderer serves training (re-rendering a dataset's stored twin states), evaluation (N worlds per
call) and deployment (the live twin's state), so a policy sees the same images in all three.
States: ``body_poses`` [N, 2, 7] (block, pusher; x, y, z, qw, qx, qy, qz; world frame, metres) and
``joint_pos`` [N, 7] [rad]. Images: RGB uint8 [N, H, W, 3], OpenCV camera convention for the views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.gaussian_scene import GaussianSceneConfig
    from twin.rig import VirtualCameraConfig

__all__ = ["ObservationRenderer"]


class ObservationRenderer:
    """Renders twin states for a policy's viewpoints.

    Args:
        twin: the twin's scene (block shape, robot).
        views: viewpoints; the image of view ``v`` is ``observation.images.<v.serial>``. A view mounted on
            the "hand" (a wrist camera) follows each world's flange (``panda_link8``).
        device: torch device ("cpu", "cuda").
        gaussians: sampling of the scene's Gaussians (default: ``GaussianSceneConfig()``).
        scene_path: a scanned scene file (``twin.scene_file``) whose Gaussians replace the sampled ones.
    """

    def __init__(self, twin: "TwinConfig", views: tuple["VirtualCameraConfig", ...], device: str = "cpu",
                 gaussians: "GaussianSceneConfig | None" = None, scene_path: str = "") -> None:
        from twin.franka import PandaKinematics
        from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
        from twin.render.scene import SceneRenderer

        if not views:
            raise ValueError("ObservationRenderer needs at least one view")
        self.views = tuple(views)
        self.kinematics = PandaKinematics(tool_offset_m=twin.robot.pusher_length_m)
        scene = GaussianScene(twin, gaussians or GaussianSceneConfig())
        if scene_path:
            from twin.scene_file import load_scene

            scene.apply_scene(load_scene(scene_path, required_bodies=scene.body_names))
        self.renderer = SceneRenderer(scene, device=device)
        # a wrist view's pose at set-up is a placeholder: its pose per world comes with every render
        self.renderer.set_cameras({v.serial: (v.intrinsics, v.T_world_camera if v.mount == "world" else v.T_mount_camera)
                                   for v in self.views})
        self._wrist = {v.serial: v.T_mount_camera for v in self.views if v.mount == "hand"}

    def render(self, body_poses: np.ndarray, joint_pos: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
        """N states -> view name -> uint8 RGB [N, H, W, 3] (``batch`` worlds per rasterization)."""
        import torch

        from twin.rig import FLANGE_LINK

        body_poses = np.asarray(body_poses, dtype=np.float64).reshape(-1, 2, 7)
        joint_pos = np.asarray(joint_pos, dtype=np.float64).reshape(-1, 7)
        if len(body_poses) != len(joint_pos):
            raise ValueError(f"{len(body_poses)} body poses for {len(joint_pos)} joint positions")
        out: dict[str, list[np.ndarray]] = {v.serial: [] for v in self.views}
        for start in range(0, len(body_poses), batch):
            bp, q = body_poses[start:start + batch], joint_pos[start:start + batch]
            links = self.kinematics.link_poses(q)
            poses = {s: links[:, FLANGE_LINK] @ T for s, T in self._wrist.items()}
            with torch.no_grad():
                images = self.renderer.render(bp, links, camera_poses=poses)
            for name, (rgb, _, _) in images.items():
                out[name].append((rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}
