"""The scene renderer (twin.render.scene.SceneRenderer): N worlds in one call equal N single renders; the
CPU path equals the reference rasterizer composited over the table; the static table is rendered once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibration import look_at
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.render import rasterization_reference
from twin.render.scene import SceneRenderer, composite_over
from twin.rig import DEFAULT_RIG, camera_tensors, intrinsics_from_fov

CFG = TwinConfig(num_worlds=3)
SMALL = GaussianSceneConfig(block_spacing_m=0.01, robot_spacing_m=0.04, table_spacing_m=0.02, seed=3)


@pytest.fixture(scope="module")
def states():
    env = PushTEnv(CFG)
    env.reset(seed=11)
    for _ in range(3):  # the worlds' pushers and arms in different places
        obs = env.observe()
        env.step(obs.pusher_xy + np.array([[0.02, 0.0], [0.0, -0.03], [-0.01, 0.01]]))
    return env.body_poses(), env.link_poses()


@pytest.fixture(scope="module")
def renderer():
    r = SceneRenderer(GaussianScene(CFG, SMALL))
    cams = {c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG[:1]}
    intr = intrinsics_from_fov(64, 48, 70.0)
    cams["overhead"] = (intr, look_at([0.5, 0.0, 0.9], [0.5, 0.0, 0.0], up=(1.0, 0.0, 0.0)))
    r.set_cameras(cams)
    return r


def test_a_batch_of_worlds_equals_single_renders(renderer, states):
    body, links = states
    batch = renderer.render(body, links)
    for serial, (rgb, depth, alpha) in batch.items():
        intr, _ = renderer.camera(serial)
        assert rgb.shape == (3, intr.height, intr.width, 3) and depth.shape == alpha.shape == (3, intr.height, intr.width, 1)
        for i in range(3):
            one = renderer.render(body[i], links[i], (serial,))[serial]
            for a, b in zip((rgb[i], depth[i], alpha[i]), one):
                assert torch.allclose(a, b, atol=1e-3), (serial, i, float((a - b).abs().max()))  # float32 sums
    # the worlds differ (the check above is not comparing one image with itself)
    rgb = batch["overhead"][0]
    assert float((rgb[0] - rgb[1]).abs().max()) > 0.05


def test_cpu_path_equals_the_reference_rasterizer_over_the_table(renderer, states):
    body, links = states
    serial = "overhead"
    intr, T = renderer.camera(serial)
    view, K = camera_tensors([intr], [T])
    got = renderer.render(body[0], links[0], (serial,))[serial]
    table = renderer.scene.table
    back = rasterization_reference(*table.tensors(), view, K, intr.width, intr.height)
    means, quats = renderer.dynamic_gaussians(body[:1], links[:1])
    g = renderer.dynamic
    front = rasterization_reference(means[0], quats[0], g.scales, g.opacities, g.colors, view, K, intr.width, intr.height)
    want = composite_over((front.colors[0], front.depths[0], front.alphas[0]), (back.colors[0], back.depths[0], back.alphas[0]))
    for a, b in zip(got, want):
        assert float((a - b).abs().max()) < 1e-3


def test_occluder_masks_cover_the_arm_not_the_block(renderer, states):
    body, links = states
    masks = renderer.occluder_masks(body[0], links[0])
    assert set(masks) == set(renderer.camera_serials)
    rgb, _, alpha = renderer.render(body[0], links[0])[DEFAULT_RIG[0].serial]
    m = masks[DEFAULT_RIG[0].serial]
    assert m.dtype == bool and m.shape == alpha.shape[:2] and 0 < m.sum() < m.size


def test_the_static_table_is_rendered_once_per_camera(monkeypatch, states):
    import twin.render._api as api

    calls = []
    real = api.rasterization

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "rasterization", counting)
    r = SceneRenderer(GaussianScene(CFG, SMALL))
    r.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG[:1]})
    assert len(calls) == 1  # the table
    body, links = states
    r.render(body, links)
    r.render(body[0], links[0])
    assert len(calls) == 3  # one per render call and camera, whatever the number of worlds


def test_block_moves_render_their_crop_and_change_nothing_outside_it(states):
    """``render_block_moves``: K moves of the block in one call per camera, each only within the crop that
    ``block_crop`` gives for the moves' reach; the crop holds the whole render's pixels there, and outside
    it the moves change nothing at all (what lets the correction's solve render the crop alone)."""
    r = SceneRenderer(GaussianScene(CFG))
    r.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG[:2]})
    bp, lp = states[0][0], states[1][0]
    means, _ = r.dynamic_gaussians(bp[None], lp[None])
    moves = torch.zeros(3, len(r.block_index), 3)
    moves[0, :, 0], moves[1, :, 1], moves[2, :, :2] = 0.001, -0.015, 0.012
    crops = {s: r.block_crop(s, means[0, r.block_index], 0.02) for s in r.camera_serials}
    cropped = r.render_block_moves(bp, lp, moves, crops)
    with torch.no_grad():
        still = r.render(bp, lp)
        for k in range(3):
            whole = r.render(bp, lp, None, moves[k])
            for s, (x0, y0, w, h) in crops.items():
                assert x0 % 16 == 0 and y0 % 16 == 0 and 0 < w * h < 0.5 * whole[s][0].shape[0] * whole[s][0].shape[1]
                for i in range(3):  # colour, depth, alpha
                    inside = whole[s][i][y0:y0 + h, x0:x0 + w]
                    assert cropped[s][i].shape[0] == 3 and torch.allclose(cropped[s][i][k], inside, atol=2e-4)
                    outside = (whole[s][i] - still[s][i]).abs()
                    assert float(outside[y0:y0 + h, x0:x0 + w].max()) > 0  # the move shows inside
                    outside[y0:y0 + h, x0:x0 + w] = 0
                    assert float(outside.max()) == 0.0
