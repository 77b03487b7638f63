"""3D Gaussians of the twin's bodies: the ``GaussianSet`` of a body in its local frame, samplers for
primitives and meshes, ``.npz`` / 3DGS ``.ply`` input and output, and the batched body-to-world
transform that feeds ``twin.render.rasterization``.

    from twin.gaussians import sample_box, pack_bodies, transform_gaussians
    table = sample_box((0.8, 0.8, 0.02), spacing=0.005, color=(0.6, 0.5, 0.4))
    scene, body_ids = pack_bodies([table, block])            # [N] body index per Gaussian
    means_w, quats_w = transform_gaussians(scene.means, scene.quats, body_ids,
                                           body_positions, body_quats)   # [B, K, 3], [B, K, 4] wxyz

Units are metres; quaternions are (w, x, y, z); colours RGB in [0, 1].
"""

from ._io import load_npz, load_ply, save_npz, save_ply
from ._quat import quat_apply, quat_mul
from ._sampling import (
    DEFAULT_SPACING_M,
    resolve_spacing,
    sample_box,
    sample_cylinder,
    sample_mesh,
    sample_plane,
    sample_sphere,
    surfels,
)
from ._set import GaussianSet, pack_bodies
from ._transform import transform_gaussians

__all__ = [
    "DEFAULT_SPACING_M",
    "GaussianSet",
    "load_npz",
    "load_ply",
    "pack_bodies",
    "quat_apply",
    "quat_mul",
    "resolve_spacing",
    "sample_box",
    "sample_cylinder",
    "sample_mesh",
    "sample_plane",
    "sample_sphere",
    "save_npz",
    "save_ply",
    "surfels",
    "transform_gaussians",
]
