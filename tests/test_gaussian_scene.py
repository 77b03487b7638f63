"""Gaussians bound to the twin's bodies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from twin.config import TwinConfig
from twin.render.scene import composite_over
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.gaussians import sample_box
from twin.render import rasterization
from twin.rig import DEFAULT_RIG, camera_tensors


@pytest.fixture(scope="module")
def scene() -> GaussianScene:
    return GaussianScene(TwinConfig())


def test_every_body_carries_gaussians(scene: GaussianScene) -> None:
    assert scene.dynamic_names[:2] == ("block", "pusher")
    assert scene.dynamic_names[2:] == tuple(f"panda_link{k}" for k in range(8))
    counts = torch.bincount(scene.body_ids, minlength=len(scene.dynamic_names))
    assert torch.all(counts > 20)
    assert len(scene.table) > 1000
    # only the block is correctable
    assert scene.correctable_mask.sum() == counts[0]


def test_block_gaussians_lie_on_the_t_surface(scene: GaussianScene) -> None:
    s = scene.twin.block
    m = scene.bodies["block"].means.numpy()
    assert np.all(np.abs(m[:, 2]) <= 0.5 * s.thickness_m + 1e-6)
    assert m[:, 0].max() == pytest.approx(0.5 * s.bar_length_m, abs=0.004)
    assert m[:, 1].max() == pytest.approx(s.bar_center_y_m + 0.5 * s.bar_width_m, abs=0.004)
    assert m[:, 1].min() == pytest.approx(s.stem_center_y_m - 0.5 * s.stem_length_m, abs=0.004)


def test_moving_bodies_move_their_gaussians(scene: GaussianScene) -> None:
    env = PushTEnv(replace(TwinConfig(), num_worlds=2))
    env.reset(options={"block_pose": [[0.5, 0.0, 0.0], [0.6, 0.1, np.pi / 2]], "pusher_xy": [[0.4, 0.2], [0.4, -0.2]]})
    poses = scene.body_poses(env.body_poses(), env.link_poses())
    means, quats = scene.world_gaussians(poses)
    assert means.shape == (2, len(scene.dynamic), 3)
    block = scene.body_ids == 0
    local = scene.dynamic.means[block]
    np.testing.assert_allclose(means[0, block], local + torch.tensor([0.5, 0.0, 0.02]), atol=2e-3)
    rotated = torch.stack([-local[:, 1], local[:, 0], local[:, 2]], dim=1) + torch.tensor([0.6, 0.1, 0.02])
    np.testing.assert_allclose(means[1, block], rotated, atol=2e-3)
    # the pusher tip sits where the env says, and the links differ between worlds only where the arm differs
    pusher = scene.body_ids == 1
    assert means[0, pusher][:, :2].mean(0).numpy() == pytest.approx([0.4, 0.2], abs=2e-3)
    base = scene.body_ids == 2
    np.testing.assert_allclose(means[0, base], means[1, base], atol=1e-6)


def test_save_load_and_replace(tmp_path: Path, scene: GaussianScene) -> None:
    path = scene.save(tmp_path / "scene.npz")
    other = GaussianScene(TwinConfig(), GaussianSceneConfig(jitter=0.5, seed=3))
    assert not torch.equal(other.bodies["block"].means, scene.bodies["block"].means)
    other.load(path)
    assert torch.equal(other.bodies["block"].means, scene.bodies["block"].means)
    assert torch.equal(other.table.colors, scene.table.colors)
    scanned = sample_box((0.2, 0.05, 0.04), spacing=0.01)
    other.replace_body("block", scanned)
    assert int(other.correctable_mask.sum()) == len(scanned)
    with pytest.raises(KeyError, match="unknown body"):
        other.replace_body("teapot", scanned)


def test_cached_table_composite_equals_full_render(scene: GaussianScene) -> None:
    cam = DEFAULT_RIG[0]
    view, K = camera_tensors([cam.intrinsics], [cam.T_world_camera])
    env = PushTEnv(TwinConfig())
    env.reset(seed=1)
    means, quats = scene.world_gaussians(scene.body_poses(env.body_poses(), env.link_poses()))
    d = scene.dynamic
    front = rasterization(means[0], quats[0], d.scales, d.opacities, d.colors, view, K, cam.width, cam.height)
    back = rasterization(*scene.table.tensors(), view, K, cam.width, cam.height)
    comp = composite_over((front.colors[0], front.depths[0], front.alphas[0]), (back.colors[0], back.depths[0], back.alphas[0]))
    full = rasterization(torch.cat([means[0], scene.table.means]), torch.cat([quats[0], scene.table.quats]),
                         torch.cat([d.scales, scene.table.scales]), torch.cat([d.opacities, scene.table.opacities]),
                         torch.cat([d.colors, scene.table.colors]), view, K, cam.width, cam.height)
    # The two differ only where a body's Gaussians straddle the table plane (the block's lower edges, the
    # robot's base): there the full render interleaves them by depth, the composite puts the table behind.
    err = torch.abs(comp[0] - full.colors[0]).max(dim=-1).values
    assert float(err.mean()) < 0.003
    assert float((err > 0.02).float().mean()) < 0.02
    assert torch.max(torch.abs(comp[2] - full.alphas[0])) < 0.02
    visible = full.alphas[0, ..., 0] > 0.99
    assert torch.median(torch.abs(comp[1] - full.depths[0])[visible]) < 1e-3
