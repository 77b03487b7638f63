"""Measure the T block's dimensions from camera frames: the twin's block is given the real block's shape.

A block that differs from the nominal one by a few millimetres pulls the visual-force correction to a
pose that best overlays the *nominal* T on the real one, a few millimetres off the real block's centre
of mass (the twin's block then sits there at rest, a static error). The fit below renders the twin's
Gaussians with the block's Gaussians moved by a piecewise-affine deformation of the nominal T (bar length
and width, stem width and length) plus a planar pose offset, and minimises the same image loss as the
correction (``VisualCorrector``) over all seven parameters by gradient descent, with the block at rest.

Block frame: origin at the T's centre of mass, y from the stem's tip to the bar (see ``twin.pusht``).
Units: metres, radians; world frame for poses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .correction import VisualCorrector, block_planar_pose
from ..pusht import TShape

__all__ = ["ShapeFitConfig", "ShapeFit", "block_dims", "fit_block_shape", "deformed_block_points"]


@dataclass(frozen=True)
class ShapeFitConfig:
    """Settings of ``fit_block_shape``."""

    #: Gradient steps (each against one frame set, in turn).
    iterations: int = 60
    #: Adam step sizes: position [m], yaw [rad], dimensions [m].
    step_m: float = 0.001
    step_rad: float = float(np.deg2rad(0.3))
    step_dims_m: float = 0.001
    #: A dimension is not moved further than this from its nominal value [m]: the fit measures a
    #: block made to a drawing, it does not discover a different object.
    max_change_m: float = 0.008

    def __post_init__(self) -> None:
        if self.iterations < 1 or not (self.step_m > 0 and self.step_rad > 0 and self.step_dims_m > 0):
            raise ValueError("ShapeFitConfig needs iterations >= 1 and step sizes > 0")
        if not self.max_change_m > 0:
            raise ValueError("max_change_m must be > 0")


@dataclass
class ShapeFit:
    """The measured block (``shape``), its pose (x [m], y [m], yaw [rad], world frame; the measured
    block's centre of mass) and the image loss before and after the fit."""

    shape: TShape
    pose: np.ndarray
    loss_before: float
    loss_after: float


def block_dims(shape: TShape) -> tuple[float, float, float, float]:
    """The four dimensions the fit measures: bar length, bar width, stem width, stem length [m]."""
    return shape.bar_length_m, shape.bar_width_m, shape.stem_width_m, shape.stem_length_m


def deformed_block_points(points: torch.Tensor, nominal: TShape, dims: torch.Tensor) -> torch.Tensor:
    """Block-frame points [n, 3] of the ``nominal`` T moved onto a T of dimensions ``dims`` (bar length,
    bar width, stem width, stem length [m]; differentiable), in that T's block frame (its own centre of
    mass). Bar points scale about the bar's top edge, stem points about the stem's axis, each part
    with its own dimensions; heights are kept."""
    L0, W0, sw0, sl0 = block_dims(nominal)
    L, W, sw, sl = dims[0], dims[1], dims[2], dims[3]
    top0 = nominal.bar_center_y_m + 0.5 * W0
    v = points[:, 1] - top0  # below the bar's top edge (<= 0)
    x = points[:, 0]
    stem = (v < -W0 + 1e-5) & (x.abs() <= 0.5 * sw0 + 1e-5)  # the inner corners move with the stem
    x_new = torch.where(stem, x * sw / sw0, x * L / L0)
    v_new = torch.where(stem, -W + (v + W0) * sl / sl0, v * W / W0)
    # the new T's centre of mass below its top edge (see TShape.bar_center_y_m)
    stem_area, area = sw * sl, L * W + sw * sl
    top = 0.5 * (W + sl) * stem_area / area + 0.5 * W
    return torch.stack([x_new, v_new + top, points[:, 2]], dim=1)


def fit_block_shape(corrector: VisualCorrector, frame_sets: Sequence[Mapping], body_poses: np.ndarray,
                    link_poses: np.ndarray | None, nominal: TShape,
                    config: ShapeFitConfig = ShapeFitConfig()) -> ShapeFit:
    """Fit the block's dimensions and planar pose to ``frame_sets`` (serial -> ``CameraFrame``, all
    showing the block at rest in the state ``body_poses`` [2, 7] / ``link_poses`` [9, 4, 4] of a twin
    whose block has the ``nominal`` shape, e.g. after localisation and correction).

    The corrector's scene must be the nominal block's. Raises ``ValueError`` without usable frames.
    """
    targets = []
    for frames in frame_sets:
        t = {s: corrector._target(s, frames[s], None) for s in frames if s in corrector.camera_serials}
        if t:
            targets.append(t)
    if not targets:
        raise ValueError("fit_block_shape needs frame sets from the corrector's calibrated cameras")
    dev = corrector.device
    local = corrector.scene.dynamic.means[corrector.scene.correctable_mask].to(dev, torch.float64)
    x0, y0, yaw0 = block_planar_pose(body_poses)
    nominal_dims = torch.tensor(block_dims(nominal), dtype=torch.float64, device=dev)

    def rot(yaw: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(yaw), torch.sin(yaw)
        z, o = torch.zeros_like(c), torch.ones_like(c)
        return torch.stack([torch.stack([c, -s, z]), torch.stack([s, c, z]), torch.stack([z, z, o])])

    R0 = rot(torch.tensor(yaw0, dtype=torch.float64, device=dev))
    d_xy = torch.zeros(2, dtype=torch.float64, device=dev, requires_grad=True)
    d_yaw = torch.zeros((), dtype=torch.float64, device=dev, requires_grad=True)
    d_dims = torch.zeros(4, dtype=torch.float64, device=dev, requires_grad=True)
    steps = (config.step_m, config.step_rad, config.step_dims_m)
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip((d_xy, d_yaw, d_dims), steps)])

    def offsets() -> torch.Tensor:
        dims = nominal_dims + d_dims
        moved = deformed_block_points(local, nominal, dims) @ rot(yaw0 + d_yaw).T
        shift = torch.cat([d_xy, torch.zeros(1, dtype=torch.float64, device=dev)])
        return (moved + shift - local @ R0.T).to(torch.float32)

    def loss_of(target: Mapping) -> torch.Tensor:
        renders = corrector.render(body_poses, link_poses, tuple(target), offsets())
        return sum(corrector._loss(renders[s], target[s]) for s in target)

    with torch.no_grad():
        before = float(np.mean([float(loss_of(t)) for t in targets]))
    for it in range(config.iterations):
        opt.zero_grad()
        loss_of(targets[it % len(targets)]).backward()
        decay = 0.5 * (1.0 + math.cos(math.pi * it / config.iterations))  # cosine schedule
        for group, lr in zip(opt.param_groups, steps):
            group["lr"] = lr * decay
        opt.step()
        with torch.no_grad():
            d_dims.clamp_(-config.max_change_m, config.max_change_m)
    with torch.no_grad():
        after = float(np.mean([float(loss_of(t)) for t in targets]))
    dims = (nominal_dims + d_dims).detach().cpu().numpy()
    shape = replace(nominal, bar_length_m=float(dims[0]), bar_width_m=float(dims[1]), stem_width_m=float(dims[2]),
                    stem_length_m=float(dims[3]))
    dxy = d_xy.detach().cpu().numpy()
    # the fitted pose: the deformed block's frame, i.e. its own centre of mass
    pose = np.array([x0 + dxy[0], y0 + dxy[1], yaw0 + float(d_yaw.detach())])
    return ShapeFit(shape=shape, pose=pose, loss_before=before, loss_after=after)
