"""Gaussians bound to the twin's bodies: the table, the T block, the pusher and the Panda's links.

Each body carries a ``GaussianSet`` in its own frame (block frame = the T's centre of mass, pusher frame
= its tip, link frames = the URDF's ``panda_linkK``), sampled from its geometry at a configured spacing.
The table is **static**: it is rendered once per camera and cached (see ``twin.perception.correction``). The other
bodies are **dynamic**; their world-frame Gaussians for all worlds come from the body poses in one
batched ``transform_gaussians`` call. Only ``correctable`` bodies (the block) receive visual forces.

Save / load: ``save(path)`` writes one ``.npz`` per scene with every body's set,
``replace_body(name, gaussians)`` swaps in e.g. a scanned block loaded with ``twin.gaussians.load_ply``, and
``apply_scene(data)`` takes every body from a scene file written by `realsim scan` (``twin.scene_file``).
Units: metres; quaternions (w, x, y, z); RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .config import TwinConfig
from .pusht import TShape
from .gaussians import GaussianSet, pack_bodies, sample_box, sample_cylinder, sample_mesh, sample_plane, transform_gaussians

__all__ = ["block_gaussians", "GaussianSceneConfig", "GaussianScene", "BodyPoses"]


@dataclass(frozen=True)
class GaussianSceneConfig:
    """Sampling of the scene's Gaussians."""

    block_spacing_m: float = 0.006
    pusher_spacing_m: float = 0.008
    robot_spacing_m: float = 0.025
    table_spacing_m: float = 0.008
    #: The table patch extends this far beyond the workspace [m].
    table_margin_m: float = 0.12
    block_color: tuple[float, float, float] = (0.80, 0.22, 0.18)
    pusher_color: tuple[float, float, float] = (0.15, 0.25, 0.75)
    robot_color: tuple[float, float, float] = (0.92, 0.92, 0.92)
    table_color: tuple[float, float, float] = (0.45, 0.47, 0.45)
    include_robot: bool = True
    #: Sampling jitter (fraction of the spacing) and its seed: a different seed = a different sampling.
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("block_spacing_m", "pusher_spacing_m", "robot_spacing_m", "table_spacing_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GaussianSceneConfig.{name} must be > 0")


@dataclass
class BodyPoses:
    """Poses ``T_world_body`` of the dynamic bodies in every world: ``positions`` [B, K, 3] m and
    ``quats`` [B, K, 4] (w, x, y, z), in ``GaussianScene.dynamic_names`` order."""

    positions: torch.Tensor
    quats: torch.Tensor


class GaussianScene:
    """The scene's Gaussians, bound to the bodies of a ``TwinConfig`` workspace."""

    correctable_names: tuple[str, ...] = ("block",)

    def __init__(self, twin: TwinConfig, config: GaussianSceneConfig = GaussianSceneConfig()) -> None:
        self.twin = twin
        self.config = config
        self.bodies: dict[str, GaussianSet] = {}
        c = config
        jit = dict(jitter=c.jitter)
        ident = torch.tensor([1.0, 0.0, 0.0, 0.0])
        self.bodies["block"] = block_gaussians(twin.block, config)
        L = twin.robot.pusher_length_m
        rod = sample_cylinder(twin.physics.pusher_radius_m, L, spacing=c.pusher_spacing_m,
                              color=c.pusher_color, seed=c.seed + 2, **jit)
        self.bodies["pusher"] = rod.transformed(torch.tensor([0.0, 0.0, 0.5 * L]), ident)  # tip at the origin
        if c.include_robot:
            for name, mesh in _panda_meshes().items():
                self.bodies[name] = sample_mesh(mesh, spacing=c.robot_spacing_m, color=c.robot_color, seed=c.seed + 3)
        ws = twin.workspace
        size = (ws.x_range_m[1] - ws.x_range_m[0] + 2 * c.table_margin_m,
                ws.y_range_m[1] - ws.y_range_m[0] + 2 * c.table_margin_m)
        centre = torch.tensor([0.5 * sum(ws.x_range_m), 0.5 * sum(ws.y_range_m), twin.physics.table_height_m])
        self.table = sample_plane(size, spacing=c.table_spacing_m, color=c.table_color, seed=c.seed + 4, **jit
                                  ).transformed(centre, ident)
        self._pack()

    # ------------------------------------------------------------------ bodies
    @property
    def dynamic_names(self) -> tuple[str, ...]:
        return tuple(self.bodies)

    def replace_body(self, name: str, gaussians: GaussianSet) -> None:
        """Swap a body's Gaussians (in the body's frame), e.g. for a scanned object."""
        if name == "table":
            self.table = gaussians
        elif name in self.bodies:
            self.bodies[name] = gaussians
        else:
            raise KeyError(f"unknown body {name!r}; bodies: {('table',) + self.dynamic_names}")
        self._pack()

    def set_block_shape(self, shape: TShape) -> None:
        """Resample the block's Gaussians for a block of other dimensions (e.g. the measured real one); each
        new Gaussian takes the colour of the nearest old one (a scanned block keeps its look)."""
        old = self.bodies["block"]
        self.twin = replace(self.twin, block=shape)
        new = block_gaussians(shape, self.config)
        nearest = torch.cdist(new.means, old.means.to(new.means.dtype)).argmin(dim=1)
        colors = old.colors.to(new.colors.dtype)[nearest]
        self.replace_body("block", GaussianSet(new.means, new.quats, new.scales, new.opacities, colors))

    @property
    def body_names(self) -> tuple[str, ...]:
        """Every body with Gaussians: the static table, then the dynamic bodies."""
        return ("table",) + self.dynamic_names

    def apply_scene(self, data) -> None:  # noqa: ANN001 - twin.scene_file.SceneData
        """Take every body's Gaussians from a scanned scene (``twin.scene_file.SceneData``); a body the
        scene lacks is a ``SceneFileError``."""
        from .scene_file import SceneFileError

        missing = [b for b in self.body_names if b not in data.bodies]
        if missing:
            raise SceneFileError(f"the scene file has no {missing}: it does not describe this twin's workspace")
        for name in self.body_names:
            g = data.bodies[name].to(dtype=self.table.means.dtype)
            if name == "table":
                self.table = g
            else:
                self.bodies[name] = g
        self._pack()

    def _pack(self) -> None:
        self.dynamic, self.body_ids = pack_bodies(list(self.bodies.values()))
        self.correctable_mask = torch.zeros(len(self.dynamic), dtype=torch.bool)
        for name in self.correctable_names:
            k = self.dynamic_names.index(name)
            self.correctable_mask |= self.body_ids == k

    def save(self, path: str | Path) -> Path:
        """Write every body's Gaussians (body frames; the table in the world frame) to one ``.npz``."""
        path = Path(path)
        arrays = {}
        for name, g in {**self.bodies, "table": self.table}.items():
            for field, t in zip(("means", "quats", "scales", "opacities", "colors"), g.tensors()):
                arrays[f"{name}/{field}"] = t.detach().cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    def load(self, path: str | Path) -> None:
        """Replace bodies with those stored by ``save`` (bodies absent from the file are kept)."""
        data = np.load(Path(path))
        names = sorted({k.split("/")[0] for k in data.files})
        for name in names:
            g = GaussianSet(*(torch.as_tensor(data[f"{name}/{f}"]) for f in ("means", "quats", "scales", "opacities", "colors")))
            if name == "table":
                self.table = g
            elif name in self.bodies:
                self.bodies[name] = g
            else:
                raise KeyError(f"{path}: unknown body {name!r}")
        self._pack()

    # ------------------------------------------------------------------ poses -> world Gaussians
    def body_poses(self, body_poses: np.ndarray, link_poses: np.ndarray | None) -> BodyPoses:
        """Dynamic body poses from the twin: ``body_poses`` [B, 2, 7] (block, pusher) as
        (x, y, z, qw, qx, qy, qz) and ``link_poses`` [B, 9, 4, 4] ``T_world_link`` (panda_link0..8)."""
        from .transforms import matrix_to_quat_wxyz

        B = body_poses.shape[0]
        pos = [body_poses[:, 0, :3], body_poses[:, 1, :3]]
        quat = [body_poses[:, 0, 3:], np.tile([1.0, 0.0, 0.0, 0.0], (B, 1))]  # the pusher stays vertical
        if self.config.include_robot:
            if link_poses is None:
                raise ValueError("link_poses are needed when the scene includes the robot")
            for k in range(len(self.bodies) - 2):
                pos.append(link_poses[:, k, :3, 3])
                quat.append(matrix_to_quat_wxyz(link_poses[:, k, :3, :3]))
        return BodyPoses(torch.as_tensor(np.stack(pos, 1), dtype=torch.float32),
                         torch.as_tensor(np.stack(quat, 1), dtype=torch.float32))

    def world_gaussians(self, poses: BodyPoses) -> tuple[torch.Tensor, torch.Tensor]:
        """World-frame ``means`` [B, N, 3] and ``quats`` [B, N, 4] of the dynamic Gaussians."""
        return transform_gaussians(self.dynamic.means, self.dynamic.quats, self.body_ids, poses.positions, poses.quats)


def block_gaussians(shape: TShape, config: GaussianSceneConfig) -> GaussianSet:
    """The T block's Gaussians in its body frame (origin at the centre of mass; the bottom face, which
    lies on the table, left out)."""
    c, s = config, shape
    bar = sample_box((s.bar_length_m, s.bar_width_m, s.thickness_m), spacing=c.block_spacing_m,
                     color=c.block_color, seed=c.seed, jitter=c.jitter)
    stem = sample_box((s.stem_width_m, s.stem_length_m, s.thickness_m), spacing=c.block_spacing_m,
                      color=c.block_color, seed=c.seed + 1, jitter=c.jitter)
    ident = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return _drop_bottom(GaussianSet.cat([
        bar.transformed(torch.tensor([0.0, s.bar_center_y_m, 0.0]), ident),
        stem.transformed(torch.tensor([0.0, s.stem_center_y_m, 0.0]), ident),
    ]), -0.5 * s.thickness_m + 1e-4)


def _drop_bottom(g: GaussianSet, z_min: float) -> GaussianSet:
    """Remove Gaussians on the block's underside (never visible, they would only cost time)."""
    return g.select(g.means[:, 2] > z_min)


def _panda_meshes() -> dict[str, "object"]:
    """Collision meshes of panda_link0..panda_link7 in their link frames (trimesh), from the offline
    Panda description. panda_link8 (the flange) has no geometry."""
    import trimesh

    from .franka import panda_urdf_path

    folder = panda_urdf_path().parents[1] / "meshes" / "collision"
    meshes = {}
    for k in range(8):
        path = folder / f"link{k}.stl"
        if not path.is_file():
            raise FileNotFoundError(f"Panda mesh {path} is missing")
        meshes[f"panda_link{k}"] = trimesh.load_mesh(path)
    return meshes
