"""twin.gaussians.transform_gaussians: body poses of many worlds to world-frame Gaussians."""

from __future__ import annotations

import math

import pytest
import torch

from twin.gaussians import pack_bodies, sample_box, sample_sphere, transform_gaussians
from twin.render import rasterization, rasterization_reference
from twin.render._projection import quat_to_rotmat

torch.set_num_threads(1)


def _rand_quats(*shape, seed=0, dtype=torch.float32):
    q = torch.randn(*shape, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return q / q.norm(dim=-1, keepdim=True)


def _bodies():
    block = sample_box((0.2, 0.05, 0.04), spacing=0.01, color=(0.9, 0.2, 0.2))
    ball = sample_sphere(0.03, spacing=0.01, color=(0.2, 0.2, 0.9))
    return pack_bodies([block, ball])


def test_matches_rotation_matrices_for_a_batch_of_worlds():
    scene, ids = _bodies()
    B, K = 4, 2
    pos = torch.randn(B, K, 3, generator=torch.Generator().manual_seed(1))
    q = _rand_quats(B, K, seed=2) * 3.0  # unnormalised on purpose
    means_w, quats_w = transform_gaussians(scene.means, scene.quats, ids, pos, q)
    assert means_w.shape == (B, len(scene), 3) and quats_w.shape == (B, len(scene), 4)
    R = quat_to_rotmat(q)  # [B, K, 3, 3]
    for b in range(B):
        for k in range(K):
            sel = ids == k
            expected = scene.means[sel] @ R[b, k].T + pos[b, k]
            assert torch.allclose(means_w[b, sel], expected, atol=1e-5)
            # orientation composes: R(q_world) = R_body R(q_local)
            assert torch.allclose(quat_to_rotmat(quats_w[b, sel]), R[b, k] @ quat_to_rotmat(scene.quats[sel]), atol=1e-5)
    assert torch.allclose(quats_w.norm(dim=-1), torch.ones(B, len(scene)), atol=1e-5)


def test_moving_a_body_moves_only_its_gaussians():
    scene, ids = _bodies()
    pos = torch.tensor([[[0.0, 0.0, 0.02], [0.3, 0.0, 0.03]]])
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(1, 2, 4)
    m0, _ = transform_gaussians(scene.means, scene.quats, ids, pos, q)
    moved = pos.clone()
    moved[0, 0] += torch.tensor([0.05, -0.02, 0.0])
    m1, _ = transform_gaussians(scene.means, scene.quats, ids, moved, q)
    assert torch.allclose(m1[0, ids == 0] - m0[0, ids == 0], torch.tensor([0.05, -0.02, 0.0]).expand(int((ids == 0).sum()), 3), atol=1e-6)
    assert torch.equal(m1[0, ids == 1], m0[0, ids == 1])
    # a quarter turn about z swaps the block's long axis from x to y
    half = math.sqrt(0.5)
    turned = q.clone()
    turned[0, 0] = torch.tensor([half, 0.0, 0.0, half])
    m2, _ = transform_gaussians(scene.means, scene.quats, ids, pos, turned)
    ext = (m2[0, ids == 0] - pos[0, 0]).abs().max(dim=0).values
    assert ext.tolist() == pytest.approx([0.025, 0.1, 0.02], abs=1e-5)


def test_moving_a_body_moves_its_rendering():
    scene, ids = _bodies()
    V = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 1.0], [0, 0, 0, 1]])[None]  # 1 m above, looking down
    K = torch.tensor([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])[None]
    q = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(2, 2, 4)
    pos = torch.tensor([[[0.0, 0.0, 0.02], [0.3, 0.3, 0.03]], [[0.1, 0.0, 0.02], [0.3, 0.3, 0.03]]])
    means_w, quats_w = transform_gaussians(scene.means, scene.quats, ids, pos, q)
    out = rasterization(means_w, quats_w, scene.scales, scene.opacities, scene.colors, V, K, 64, 48)
    red = out.colors[:, 0, ..., 0] - out.colors[:, 0, ..., 2]  # the block is red, the ball blue
    u = torch.arange(64) + 0.5
    cx = [(r.clamp_min(0) * u).sum() / r.clamp_min(0).sum() for r in red]
    assert float(cx[1] - cx[0]) == pytest.approx(60.0 * 0.1 / 0.98, abs=0.5)  # fx * dx / depth of the top face


def test_differentiable_in_body_poses_and_local_gaussians():
    g = torch.Generator().manual_seed(3)
    means = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    quats = _rand_quats(5, seed=4, dtype=torch.float64).requires_grad_(True)
    ids = torch.tensor([0, 1, 1, 0, 2])
    pos = torch.randn(2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bq = _rand_quats(2, 3, seed=5, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda *a: transform_gaussians(a[0], a[1], ids, a[2], a[3]), (means, quats, pos, bq))


@pytest.mark.parametrize(
    "change, exc",
    [
        (dict(means=torch.zeros(4, 3)), ValueError),
        (dict(quats=torch.zeros(5, 3)), ValueError),
        (dict(body_ids=torch.tensor([0, 1, 2, 0, 3])), ValueError),
        (dict(body_ids=torch.zeros(5)), TypeError),
        (dict(body_quats=torch.ones(2, 2, 4)), ValueError),
        (dict(body_positions=[[0.0, 0.0, 0.0]]), TypeError),
    ],
)
def test_validation(change, exc):
    kw = dict(means=torch.zeros(5, 3), quats=torch.ones(5, 4), body_ids=torch.zeros(5, dtype=torch.long),
              body_positions=torch.zeros(2, 3, 3), body_quats=torch.ones(2, 3, 4))
    kw.update(change)
    with pytest.raises(exc):
        transform_gaussians(**kw)


def test_render_gradient_reaches_body_poses():
    """d(image loss)/d(body pose) through transform_gaussians and the renderer: the CPU path agrees
    with the reference's autograd, and the reference with finite differences (float64)."""
    block = sample_box((0.1, 0.03, 0.02), spacing=0.012, color=(0.9, 0.2, 0.2))
    V = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0.6], [0, 0, 0, 1]])[None]  # 0.6 m above, looking down
    K = torch.tensor([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])[None]
    ids = torch.zeros(len(block), dtype=torch.long)
    v, u = torch.meshgrid(torch.arange(30) + 0.5, torch.arange(40) + 0.5, indexing="ij")
    weight = (1 + 0.5 * torch.sin(0.2 * u + 0.1 * v))[None, ..., None]

    def loss(render, pos, quat, dtype):
        g = block.to(dtype=dtype)
        m, q = transform_gaussians(g.means, g.quats, ids, pos, quat)
        out = render(m, q, g.scales, g.opacities, g.colors, V.to(dtype), K.to(dtype), 40, 30)
        return (out.colors * weight.to(dtype)).sum() + (out.alphas * weight.to(dtype)).sum()

    pose = (torch.tensor([[0.01, -0.02, 0.01]]), torch.tensor([[0.98, 0.05, -0.03, 0.2]]))
    grads = {}
    for name, render, dtype in (("cpu", rasterization, torch.float32), ("ref", rasterization_reference, torch.float64)):
        pos, quat = (t.detach().to(dtype).clone().requires_grad_(True) for t in pose)
        loss(render, pos, quat, dtype).backward()
        grads[name] = (pos.grad, quat.grad)
    for a, b in zip(grads["cpu"], grads["ref"]):
        assert float(b.norm()) > 0
        assert float((a.double() - b).norm() / b.norm()) < 2e-3
    eps = 1e-7
    for i in range(3):  # finite differences of the reference along each position axis
        d = torch.zeros(1, 3, dtype=torch.float64)
        d[0, i] = eps
        pos, quat = (t.double() for t in pose)
        with torch.no_grad():
            fd = (loss(rasterization_reference, pos + d, quat, torch.float64)
                  - loss(rasterization_reference, pos - d, quat, torch.float64)) / (2 * eps)
        assert float(fd) == pytest.approx(float(grads["ref"][0][0, i]), rel=1e-4, abs=1e-3)
