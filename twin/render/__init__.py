"""Differentiable rendering of 3D Gaussians: RGB, expected depth and alpha for batches of cameras
and worlds, with gsplat's CUDA rasterizer or a CPU tile rasterizer behind one functional call.

    from twin.render import rasterization
    colors, depths, alphas, meta = rasterization(means, quats, scales, opacities, colors,
                                                 viewmats, Ks, width, height)

The twin's scene for calibrated cameras, one or N worlds per call: ``twin.render.scene.SceneRenderer``.

Conventions (see ``design.md``): quaternions (w, x, y, z); ``viewmats`` world -> camera in OpenCV
axes (x right, y down, z forward), i.e. the inverse of ``T_world_camera``; metres; pixel centres at
+0.5. Importing this package loads neither Warp nor gsplat; they load on first render.
"""

from ._api import CPU_TILE_SIZE, RenderOutput, has_cuda_rasterizer, rasterization
from ._cameras import viewmat_from_pose
from ._reference import rasterization_reference

__all__ = [
    "CPU_TILE_SIZE",
    "RenderOutput",
    "has_cuda_rasterizer",
    "rasterization",
    "rasterization_reference",
    "viewmat_from_pose",
    "SceneRenderer",
]


def __getattr__(name: str):
    if name == "SceneRenderer":  # loads the Gaussian scene (and torch's heavier parts) only when asked for
        from .scene import SceneRenderer

        return SceneRenderer
    raise AttributeError(f"module 'twin.render' has no attribute {name!r}")
