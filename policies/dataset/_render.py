"""Image features from the twin's state: renders of stored body poses and joints for any viewpoint.

The same Gaussians and scene renderer the live loop's correction uses (``twin.render.scene.SceneRenderer``,
through the policies' ``policies.learned.images.ObservationRenderer``),
so a render from a stored state equals the render made live from that state (float32 rasterization).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.gaussian_scene import GaussianSceneConfig
    from twin.rig import VirtualCameraConfig

__all__ = ["TwinRenderer"]


class TwinRenderer:
    """Renders one twin world for virtual cameras.

    Args:
        twin: the twin's scene (block shape, robot).
        gaussians: sampling of the scene's Gaussians.
        cameras: viewpoints; the image feature of camera ``c`` is ``observation.images.<c.serial>``.
        device: torch device, resolved by the caller ("cpu", "cuda").
        scene_path: a scanned scene file (`realsim scan`) whose look the images get ("": the nominal palette).
    """

    def __init__(self, twin: "TwinConfig", gaussians: "GaussianSceneConfig", cameras: tuple["VirtualCameraConfig", ...],
                 device: str = "cpu", scene_path: str = "") -> None:
        from policies.learned.images import ObservationRenderer

        if not cameras:
            raise ValueError("TwinRenderer needs at least one camera")
        names = [c.serial for c in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        self.cameras = tuple(cameras)
        self._renderer = ObservationRenderer(twin, self.cameras, device=device, gaussians=gaussians, scene_path=scene_path)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """Camera name -> (height, width) [px]."""
        return {c.serial: (c.height, c.width) for c in self.cameras}

    def render(self, body_poses: np.ndarray, joint_pos: np.ndarray) -> dict[str, np.ndarray]:
        """One state: ``body_poses`` [2, 7] (block, pusher; x, y, z, qw, qx, qy, qz; world frame) and
        ``joint_pos`` [7] rad -> camera name -> uint8 RGB [H, W, 3]."""
        body_poses = np.asarray(body_poses, dtype=np.float64).reshape(1, 2, 7)
        joint_pos = np.asarray(joint_pos, dtype=np.float64).reshape(1, 7)
        return {k: v[0] for k, v in self._renderer.render(body_poses, joint_pos).items()}

    def render_episode(self, body_poses: np.ndarray, joint_pos: np.ndarray) -> dict[str, np.ndarray]:
        """``body_poses`` [T, 14] or [T, 2, 7] and ``joint_pos`` [T, 7] -> name -> uint8 [T, H, W, 3]."""
        body_poses = np.asarray(body_poses, dtype=np.float64).reshape(-1, 2, 7)
        joint_pos = np.asarray(joint_pos, dtype=np.float64).reshape(-1, 7)
        if len(body_poses) != len(joint_pos):
            raise ValueError("body_poses and joint_pos must have the same number of frames")
        frames: dict[str, list[np.ndarray]] = {c.serial: [] for c in self.cameras}
        for b, q in zip(body_poses, joint_pos):
            for name, img in self.render(b, q).items():
                frames[name].append(img)
        return {k: np.stack(v) for k, v in frames.items()}
