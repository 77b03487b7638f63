"""The Gaussian set of one body (or of a whole scene) in a local frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class GaussianSet:
    """N 3D Gaussians expressed in one frame (a body's local frame unless said otherwise).

    All fields are torch tensors on the same device with the same floating dtype.
    """

    means: Tensor
    """[N, 3] m, centres in the set's frame."""
    quats: Tensor
    """[N, 4] (w, x, y, z), orientation of each Gaussian's principal axes in the set's frame."""
    scales: Tensor
    """[N, 3] m, standard deviations along the Gaussian's principal axes (> 0)."""
    opacities: Tensor
    """[N] peak opacity in [0, 1]."""
    colors: Tensor
    """[N, 3] RGB in [0, 1]."""

    def __post_init__(self) -> None:
        fields = dict(means=self.means, quats=self.quats, scales=self.scales, opacities=self.opacities,
                      colors=self.colors)
        for name, t in fields.items():
            if not isinstance(t, Tensor):
                raise TypeError(f"GaussianSet.{name} must be a torch.Tensor, got {type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"GaussianSet.{name} must be floating point, got {t.dtype}")
            if t.device != self.means.device or t.dtype != self.means.dtype:
                raise ValueError(f"GaussianSet.{name} is {t.dtype} on {t.device}, means is "
                                 f"{self.means.dtype} on {self.means.device}")
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise ValueError(f"GaussianSet.means must be [N, 3], got {list(self.means.shape)}")
        n = self.means.shape[0]
        for name, shape in (("quats", (n, 4)), ("scales", (n, 3)), ("opacities", (n,)), ("colors", (n, 3))):
            if tuple(fields[name].shape) != shape:
                raise ValueError(f"GaussianSet.{name} must be {list(shape)}, got {list(fields[name].shape)}")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device=None, dtype: torch.dtype | None = None) -> "GaussianSet":
        """A copy on ``device`` and/or in floating ``dtype``."""
        return GaussianSet(*(t.to(device=device, dtype=dtype) for t in self.tensors()))

    def transformed(self, position: Tensor, quat: Tensor) -> "GaussianSet":
        """The same Gaussians expressed in a parent frame, given this frame's pose in it:
        ``position`` [3] m and ``quat`` [4] (w, x, y, z)."""
        from ._quat import quat_apply, quat_mul

        p = torch.as_tensor(position, dtype=self.means.dtype, device=self.device)
        q = torch.as_tensor(quat, dtype=self.means.dtype, device=self.device)
        if p.shape != (3,) or q.shape != (4,):
            raise ValueError(f"position must be [3] and quat [4], got {list(p.shape)}, {list(q.shape)}")
        q = q / q.norm()
        return GaussianSet(quat_apply(q, self.means) + p, quat_mul(q.expand_as(self.quats), self.quats),
                           self.scales, self.opacities, self.colors)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(means, quats, scales, opacities, colors): the first five arguments of
        ``twin.render.rasterization``, e.g. ``rasterization(*g.tensors(), viewmats, Ks, w, h)``."""
        return (self.means, self.quats, self.scales, self.opacities, self.colors)

    def select(self, index: Tensor) -> "GaussianSet":
        """The Gaussians picked by ``index`` (a [N] bool mask or integer indices)."""
        return GaussianSet(*(t[index] for t in self.tensors()))

    @staticmethod
    def cat(sets: Sequence["GaussianSet"]) -> "GaussianSet":
        """All Gaussians of ``sets`` in one set (they must share a frame, device and dtype)."""
        if len(sets) == 0:
            raise ValueError("GaussianSet.cat needs at least one set")
        return GaussianSet(*(torch.cat(ts, dim=0) for ts in zip(*(s.tensors() for s in sets))))


def pack_bodies(sets: Sequence[GaussianSet]) -> tuple[GaussianSet, Tensor]:
    """Concatenate per-body sets (each in its own body frame) for ``transform_gaussians``.

    Returns the packed set and ``body_ids`` [N] int64: Gaussian i belongs to body ``body_ids[i]``,
    the index of its set in ``sets``.
    """
    packed = GaussianSet.cat(sets)
    counts = torch.tensor([len(s) for s in sets], device=packed.device)
    body_ids = torch.repeat_interleave(torch.arange(len(sets), device=packed.device), counts)
    return packed, body_ids
