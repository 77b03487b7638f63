"""The correction's two ways to read the block's planar motion (dx, dy, dyaw) from one frame set: Gauss-
Newton on the rigid motion (the default) and per-Gaussian Adam steps with a rigid fit (``solver="adam"``).
Mixed into `VisualCorrector`, whose renders, residuals and settings they use (see ``correction.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from .._physics import BLOCK


def block_planar_pose(body_poses: np.ndarray) -> np.ndarray:
    """The block's (x [m], y [m], yaw [rad]) from physics body poses [2, 7] (x, y, z, qw, qx, qy, qz): the
    block stays upright, so its yaw is twice the angle of (qw, qz)."""
    b = body_poses[BLOCK]
    return np.array([b[0], b[1], 2 * math.atan2(b[6], b[3])])


class _MotionSolvers:
    """Methods of `VisualCorrector` that solve for the block's planar motion (mixed in)."""

    def _solve_adam(self, poses: np.ndarray, links: np.ndarray | None, targets: dict) -> tuple[np.ndarray, float, float, int]:
        """Per-Gaussian Adam steps, then the planar rigid motion fitted to the Gaussians' displacements:
        (dxy [2] m, dyaw rad, loss, visible block Gaussians)."""
        cfg = self.config
        offset = torch.zeros((len(self.renderer.block_index), 3), device=self.device, requires_grad=True)
        opt = torch.optim.Adam([offset], lr=cfg.step_m)
        grad_strength = torch.zeros(len(self.renderer.block_index), device=self.device)
        loss_value = float("nan")
        for it in range(cfg.iterations):
            opt.param_groups[0]["lr"] = cfg.step_m * 0.5**it
            opt.zero_grad()
            if it == 0:
                _, loss = self._first_render(poses, links, targets, offset)
            else:
                renders = self.render(poses, links, tuple(targets), offset)
                loss = sum(self._loss(renders[s], targets[s]) for s in targets)
            loss.backward()
            with torch.no_grad():
                offset.grad[:, 2] = 0.0  # the block rests on the table: planar correction
                grad_strength += offset.grad.norm(dim=1)
            loss_value = float(loss.detach())
            opt.step()
        disp = offset.detach().cpu().numpy()[:, :2].astype(np.float64)
        weights = grad_strength.cpu().numpy().astype(np.float64)
        visible = int(np.count_nonzero(weights > 1e-12))
        if visible < cfg.min_visible_gaussians:
            return np.zeros(2), 0.0, loss_value, visible
        local = (self.scene.dynamic.means[self.scene.correctable_mask][:, :2]).numpy().astype(np.float64)
        yaw = block_planar_pose(poses)[2]
        c, s = math.cos(yaw), math.sin(yaw)
        r = local @ np.array([[c, s], [-s, c]])  # block-frame offsets rotated into the world frame
        dxy, dyaw = _fit_planar_motion(r, disp, weights)
        return dxy, dyaw, loss_value, visible

    def _solve_gauss_newton(self, poses: np.ndarray, links: np.ndarray | None, targets: dict) -> tuple[np.ndarray, float, float, int]:
        """Gauss-Newton on the block's planar rigid motion (dx, dy, dyaw) about its origin, the robust
        (Huber) loss as iteratively reweighted least squares, the Jacobian by finite differences:
        (dxy [2] m, dyaw rad, loss at the twin's pose, visible block Gaussians)."""
        cfg = self.config
        means, _ = self.renderer.dynamic_gaussians(poses[None], None if links is None else links[None])
        block_xy = means[0, self.renderer.block_index][:, :2].detach().double()
        origin = torch.as_tensor(block_planar_pose(poses)[:2], dtype=torch.float64, device=block_xy.device)

        def offsets(p: np.ndarray) -> torch.Tensor:
            c, s = math.cos(p[2]), math.sin(p[2])
            rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64, device=block_xy.device)
            moved = (block_xy - origin) @ rot.T + origin + torch.as_tensor(p[:2], dtype=torch.float64, device=block_xy.device)
            xy = (moved - block_xy).float()
            return torch.cat([xy, torch.zeros_like(xy[:, :1])], dim=1)

        # the twin's pose: loss, exposure gains, and which block Gaussians the images see (their gradient)
        zero = torch.zeros((len(self.renderer.block_index), 3), device=self.device, requires_grad=True)
        renders, loss = self._first_render(poses, links, targets, zero)
        loss.backward()
        visible = int(torch.count_nonzero(zero.grad[:, :2].norm(dim=1) > 1e-12))
        loss_value = float(loss.detach())
        if visible < cfg.min_visible_gaussians:
            return np.zeros(2), 0.0, loss_value, visible
        masks = {s: self._residual_masks(renders[s], targets[s]) for s in targets}
        serials = tuple(targets)
        # each residual group's scale comes from its whole image (the loss's normalisation)
        scales = {s: [scale for _, scale in self._residuals(renders[s], targets[s], masks[s])] for s in serials}
        # Only the pixels the block can reach within this solve change between its renders; elsewhere the
        # Jacobian is zero and adds nothing to the normal equations, so the solve's renders cover those alone.
        lever = float((block_xy - origin).norm(dim=1).max())
        reach = (cfg.gn_iterations * cfg.reach_m + cfg.gn_fd_m
                 + lever * (cfg.gn_iterations * cfg.gn_max_step_rad + cfg.gn_fd_rad))
        crops = {s: self.renderer.block_crop(s, means[0, self.renderer.block_index], reach)
                 for s in serials if s not in self._wrist}
        cropped = {s: _crop_target(targets[s], masks[s], crops.get(s)) for s in serials}

        def residuals(r) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001 - serial -> cropped render
            """All residuals of cropped renders ``r`` (one vector) and the square of each one's scale."""
            groups = [(a, scale) for s in serials for (a, _), scale in zip(self._residuals(r[s], *cropped[s]), scales[s])]
            return torch.cat([a for a, _ in groups]), torch.cat([(scale * scale).expand_as(a) for a, scale in groups])

        def residuals_at(ps: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
            """The residuals with the block moved by each planar motion of ``ps``: one render per fixed camera."""
            moved = torch.stack([offsets(p) for p in ps])
            with torch.no_grad():
                images = self.renderer.render_block_moves(poses, links, moved, crops)
                for s in serials:
                    if s in self._wrist:  # a camera on the arm: whole renders from the flange's pose
                        views = [self.render(poses, links, (s,), m)[s] for m in moved]
                        images[s] = tuple(torch.stack(x) for x in zip(*views))
                return [residuals({s: tuple(x[k] for x in images[s]) for s in serials}) for k in range(len(ps))]

        fd = np.array([cfg.gn_fd_m, cfg.gn_fd_m, cfg.gn_fd_rad])
        p = np.zeros(3)
        with torch.no_grad():
            a0, scale2 = residuals({s: _crop_images(tuple(t.detach() for t in renders[s]), crops.get(s)) for s in serials})
        for it in range(cfg.gn_iterations):
            if it == 0:  # the Jacobian at the twin's pose; later iterations reuse it (one render, not three)
                moved = residuals_at([p + fd * e for e in np.eye(3)])
                J = torch.stack([(m - a0) / d for (m, _), d in zip(moved, fd)], dim=1).double()
            else:
                a0, scale2 = residuals_at([p])[0]
            a = a0.double()
            # IRLS weights of the Huber loss: 1/delta inside, 1/|a| outside, times each residual's scale^2
            w = scale2.double() / torch.clamp(a.abs(), min=cfg.huber_delta)
            H = J.T @ (J * w[:, None])
            g = J.T @ (w * a)
            if not torch.isfinite(H).all() or float(torch.linalg.det(H)) <= 0.0:
                break
            step = -torch.linalg.solve(H, g).cpu().numpy()
            norm = float(np.linalg.norm(step[:2]))
            if norm > cfg.reach_m:
                step[:2] *= cfg.reach_m / norm
            step[2] = float(np.clip(step[2], -cfg.gn_max_step_rad, cfg.gn_max_step_rad))
            p = p + step
            if np.linalg.norm(step[:2]) <= cfg.gn_stop_m and abs(step[2]) <= cfg.gn_stop_rad:
                break
        return p[:2], float(p[2]), loss_value, visible


def _fit_planar_motion(r: np.ndarray, disp: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least-squares small planar motion (dx, dy, dyaw) that best explains displacements
    ``disp`` [n, 2] of points at offsets ``r`` [n, 2] from the centre of rotation."""
    A = np.zeros((len(r), 2, 3))
    A[:, 0, 0] = 1.0
    A[:, 1, 1] = 1.0
    A[:, 0, 2] = -r[:, 1]
    A[:, 1, 2] = r[:, 0]
    AtA = np.einsum("n,nij,nik->jk", w, A, A)
    Atb = np.einsum("n,nij,ni->j", w, A, disp)
    x = np.linalg.lstsq(AtA, Atb, rcond=None)[0]
    return x[:2], float(x[2])


def _crop_images(images: tuple[torch.Tensor, ...], crop: tuple[int, int, int, int] | None) -> tuple[torch.Tensor, ...]:
    """Images [..., H, W, C] cut to ``crop`` (x0, y0, width, height; None: whole)."""
    if crop is None:
        return images
    x0, y0, w, h = crop
    return tuple(x[..., y0:y0 + h, x0:x0 + w, :] for x in images)


def _crop_target(target: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                 crop: tuple[int, int, int, int] | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A frame's target tensors and residual masks cut to ``crop`` (per-channel gains stay as they are)."""
    def cut(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v if k == "gain" else _crop_images((v,), crop)[0] for k, v in d.items()}

    return cut(target), cut(masks)


def _huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a < delta, 0.5 * a * a / delta, a - 0.5 * delta)


def _block_radius(scene) -> float:  # noqa: ANN001 - GaussianScene
    """Typical lever arm of the block's Gaussians about its centre of mass [m]."""
    m = scene.dynamic.means[scene.correctable_mask][:, :2]
    return float(m.norm(dim=1).mean())


def frame_time_ns(frames: Mapping, serials) -> int:  # noqa: ANN001
    """Host receive time of the newest frame among ``serials`` [ns, monotonic clock]."""
    return max(int(frames[s].host_time_ns) for s in serials)
