"""twin.render: the CPU tile rasterizer against the brute-force reference, gsplat's projection,
finite differences and, on CUDA machines, gsplat's rasterizer."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from calibration import look_at
from twin.render import has_cuda_rasterizer, rasterization, rasterization_reference, viewmat_from_pose

torch.set_num_threads(1)

W, H = 40, 30


def _K(w=W, h=H, f=45.0):
    return torch.tensor([[f, 0.0, w / 2 + 0.3], [0.0, f * 1.05, h / 2 - 0.2], [0.0, 0.0, 1.0]])


def _look_at(eye, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """world -> camera (OpenCV) viewmat of a camera at ``eye`` looking at ``target``."""
    return viewmat_from_pose(torch.as_tensor(look_at(eye, target), dtype=torch.float32))


def _scene(n=120, seed=0, batch=(), spread=0.25, opacity=(0.2, 1.0), size=(0.01, 0.05)):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(batch + (n, 3), generator=g) * spread
    quats = torch.randn(batch + (n, 4), generator=g)
    scales = torch.rand(batch + (n, 3), generator=g) * (size[1] - size[0]) + size[0]
    opac = torch.rand(batch + (n,), generator=g) * (opacity[1] - opacity[0]) + opacity[0]
    colors = torch.rand(batch + (n, 3), generator=g)
    return means, quats, scales, opac, colors


CAMS = torch.stack([_look_at((0.9, -0.6, 0.5)), _look_at((-0.2, 0.8, 0.7))])


def _max_err(a, b):
    return max(float((x - y).detach().abs().max()) for x, y in zip(a[:3], b[:3]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_matches_reference_two_cameras(seed):
    scene = _scene(seed=seed)
    Ks = torch.stack([_K(), _K(f=60.0)])
    fast = rasterization(*scene, CAMS, Ks, W, H, backend="cpu")
    ref = rasterization_reference(*scene, CAMS, Ks, W, H)
    assert fast.colors.shape == (2, H, W, 3) and fast.depths.shape == (2, H, W, 1) and fast.alphas.shape == (2, H, W, 1)
    assert float(fast.alphas.max()) > 0.5  # the scene is on screen
    assert _max_err(fast, ref) < 1e-3
    assert torch.equal(fast.meta["radii"], ref.meta["radii"])


def test_cpu_matches_reference_dense_scene_with_transmittance_cutoff():
    # many opaque Gaussians: pixels saturate and stop before the transmittance reaches 1e-4
    scene = _scene(n=300, seed=3, opacity=(0.8, 1.0), size=(0.02, 0.08), spread=0.3)
    V = _look_at((0.0, -0.45, 0.2))[None]
    fast = rasterization(*scene, V, _K()[None], W, H, backend="cpu", backgrounds=torch.tensor([0.1, 0.2, 0.3]))
    ref = rasterization_reference(*scene, V, _K()[None], W, H, backgrounds=torch.tensor([0.1, 0.2, 0.3]))
    assert float(fast.alphas.max()) > 0.999 and float(fast.alphas.max()) < 1.0 - 1e-4
    assert _max_err(fast, ref) < 1e-3


def test_batch_of_worlds_equals_worlds_rendered_one_by_one():
    means, quats, scales, opac, colors = _scene(n=60, seed=4, batch=(3,))
    Ks = torch.stack([_K(), _K(f=50.0)])
    out = rasterization(means, quats, scales[0], opac[0], colors[0], CAMS, Ks, W, H)  # shared look, per-world poses
    assert out.colors.shape == (3, 2, H, W, 3) and out.meta["radii"].shape == (3, 2, 60, 2)
    for b in range(3):
        one = rasterization(means[b], quats[b], scales[0], opac[0], colors[0], CAMS, Ks, W, H)
        assert _max_err([t[b] for t in out[:3]], one) < 1e-6
    ref = rasterization_reference(means, quats, scales[0], opac[0], colors[0], CAMS, Ks, W, H)
    assert _max_err(out, ref) < 1e-3


def test_per_world_cameras():
    means, quats, scales, opac, colors = _scene(n=40, seed=5, batch=(2,))
    V = torch.stack([CAMS, CAMS.flip(0)])  # [2 worlds, 2 cameras, 4, 4]
    out = rasterization(means, quats, scales, opac, colors, V, _K()[None].expand(2, 2, 3, 3), W, H)
    one = rasterization(means[1], quats[1], scales[1], opac[1], colors[1], CAMS.flip(0), _K()[None].expand(2, 3, 3), W, H)
    assert _max_err([t[1] for t in out[:3]], one) < 1e-6


@pytest.mark.parametrize("D", [1, 5])
def test_any_number_of_channels_forward_and_backward(D):
    means, quats, scales, opac, _ = _scene(n=50, seed=11)
    feats = torch.rand(50, D, generator=torch.Generator().manual_seed(0))
    params = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, feats)]
    V, K = CAMS[1:], _K()[None]
    wf = torch.rand(1, H, W, D, generator=torch.Generator().manual_seed(1))
    grads, outs = [], []
    for render in (rasterization, rasterization_reference):
        out = render(*params, V, K, W, H)
        ((out.colors * wf).sum() + out.alphas.sum() + out.depths.sum()).backward()
        grads.append([p.grad.clone() for p in params])
        outs.append(out)
        for p in params:
            p.grad = None
    assert outs[0].colors.shape == (1, H, W, D)
    assert _max_err(outs[0], outs[1]) < 1e-3
    for a, b in zip(*grads):
        assert float((a - b).norm() / b.norm()) < 2e-3


def test_several_cpu_threads_give_the_same_images_and_gradients():
    scene = _scene(n=150, seed=12)
    w, h = 160, 120  # enough pixels for several chunks

    def run():
        params = [t.clone().requires_grad_(True) for t in scene]
        out = rasterization(*params, CAMS, torch.stack([_K(w, h, 100.0)] * 2), w, h)
        (out.colors.sum() + out.depths.sum() + out.alphas.sum()).backward()
        return out, [p.grad for p in params]

    one, g1 = run()
    torch.set_num_threads(2)
    try:
        two, g2 = run()
    finally:
        torch.set_num_threads(1)
    assert _max_err(one, two) == 0.0
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_tile_size_does_not_change_the_image():
    scene = _scene(seed=6)
    outs = [rasterization(*scene, CAMS, _K()[None].expand(2, 3, 3), W, H, tile_size=t) for t in (4, 8, 16)]
    assert _max_err(outs[0], outs[1]) < 1e-6 and _max_err(outs[0], outs[2]) < 1e-6


def test_pixel_convention_and_expected_depth():
    # a camera 2 m behind the world origin along world +y looks along +y (camera x = world x,
    # camera y = -world z); a small Gaussian at world (0.11, 0, -0.01) is 2 m in front of it and
    # projects to u = 100 * 0.11 / 2 + 20 = 25.5, v = 100 * 0.01 / 2 + 15 = 15.5: pixel (25, 15)'s centre
    V = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
    K = torch.tensor([[100.0, 0, 20.0], [0, 100.0, 15.0], [0, 0, 1]])
    one = [torch.tensor([[0.11, 0.0, -0.01]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.01),
           torch.tensor([0.9]), torch.tensor([[1.0, 0.5, 0.25]])]
    out = rasterization(*one, V[None], K[None], W, H)
    a = out.alphas[0, ..., 0]
    v, u = divmod(int(a.argmax()), W)
    assert (u, v) == (25, 15)
    assert out.meta["means2d"][0, 0].tolist() == pytest.approx([25.5, 15.5], abs=1e-5)
    assert float(a[v, u]) == pytest.approx(0.9, abs=1e-6)
    assert float(a[v, u + 1]) < float(a[v, u]) and float(a[v, u + 1]) == pytest.approx(float(a[v, u - 1]), abs=1e-6)
    assert float(out.depths[0, v, u, 0]) == pytest.approx(2.0, abs=1e-5)
    assert out.colors[0, v, u].tolist() == pytest.approx([0.9, 0.45, 0.225], abs=1e-6)
    assert float(out.depths[0, 0, 0, 0]) == 0.0 and float(a[0, 0]) == 0.0  # empty pixels: zero depth and alpha


def test_look_at_and_viewmat_from_pose():
    eyes = torch.tensor([[0.5, -0.6, 0.7], [-0.3, 0.2, 1.0]])
    target = torch.tensor([0.1, 0.05, 0.0])
    T = torch.as_tensor(np.stack([look_at(e.numpy(), target.numpy()) for e in eyes]), dtype=torch.float32)
    assert T.shape == (2, 4, 4)
    R = T[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2), atol=1e-6)  # right-handed
    V = viewmat_from_pose(T)
    assert torch.allclose(V @ T, torch.eye(4).expand(2, 4, 4), atol=1e-6)
    K = torch.tensor([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]])
    p = V[:, :3, :3] @ target + V[:, :3, 3]  # the target: on the optical axis, in front
    assert torch.allclose(p[:, :2], torch.zeros(2, 2), atol=1e-6) and bool((p[:, 2] > 0).all())
    above = V[:, :3, :3] @ (target + torch.tensor([0.0, 0.0, 0.05])) + V[:, :3, 3]
    v_img = K[1, 1] * above[:, 1] / above[:, 2] + K[1, 2]
    assert bool((v_img < 15).all())  # world up is image up (smaller v)
    with pytest.raises(ValueError):
        look_at([0.0, 0.0, 1.0], np.zeros(3))  # looking straight down along up


def test_culling_behind_camera_and_off_screen():
    V = torch.eye(4)[None]
    K = _K()[None]
    means = torch.tensor([[0.0, 0.0, -1.0], [5.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(3, 4)
    out = rasterization(means, quats, torch.full((3, 3), 0.02), torch.ones(3), torch.rand(3, 3), V, K, W, H)
    assert out.meta["radii"][0, :, 0].tolist()[:2] == [0, 0] and int(out.meta["radii"][0, 2, 0]) > 0
    empty = rasterization(means[:2], quats[:2], torch.full((2, 3), 0.02), torch.ones(2), torch.rand(2, 3), V, K, W, H)
    assert float(empty.alphas.abs().max()) == 0.0 and float(empty.colors.abs().max()) == 0.0


def _loss(out, wr, wd, wa, expected_depth=True):
    # expected depth jumps from 0 to z where a Gaussian's 1/255 edge crosses an empty pixel, so finite
    # differences use the accumulated depth (depth * alpha), which is continuous up to 1/255 steps
    d = out.depths if expected_depth else out.depths * out.alphas
    return (out.colors * wr).sum() + (d * wd).sum() + (out.alphas * wa).sum()


def _weights(seed=0):
    """Smooth per-pixel loss weights [1, H, W, 3], [1, H, W, 1], [1, H, W, 1]."""
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    k = torch.rand(5, 3, generator=g)
    fields = [1 + 0.5 * torch.sin(u * (0.1 + 0.2 * a) + v * (0.1 + 0.2 * b) + 6 * c) for a, b, c in k]
    return torch.stack(fields[:3], -1)[None], fields[3][None, ..., None], fields[4][None, ..., None]


def test_cpu_gradients_match_reference_autograd():
    scene = [t.clone().requires_grad_(True) for t in _scene(n=80, seed=7)]
    V, K = CAMS[:1], _K()[None]
    wr, wd, wa = _weights()
    bg = torch.tensor([0.2, 0.3, 0.1], requires_grad=True)
    _loss(rasterization(*scene, V, K, W, H, backend="cpu", backgrounds=bg), wr, wd, wa).backward()
    fast = [t.grad.clone() for t in scene] + [bg.grad.clone()]
    for t in scene + [bg]:
        t.grad = None
    _loss(rasterization_reference(*scene, V, K, W, H, backgrounds=bg), wr, wd, wa).backward()
    ref = [t.grad for t in scene] + [bg.grad]
    for name, a, b in zip(["means", "quats", "scales", "opacities", "colors", "backgrounds"], fast, ref):
        assert float(b.abs().max()) > 0, name
        err = float((a - b).norm() / b.norm())
        assert err < 2e-3, (name, err)


def _fd_check(render, params, which, wr, wd, wa, eps, rtol, n_dirs=6, seed=0):
    """Directional derivatives along random directions vs autograd, per parameter in ``which``."""
    g = torch.Generator().manual_seed(seed)
    params = [p.detach().clone().requires_grad_(True) for p in params]
    _loss(render(*params), wr, wd, wa, False).backward()
    for i in which:
        grad = params[i].grad
        fd, an = [], []
        for _ in range(n_dirs):
            d = torch.randn(params[i].shape, generator=g, dtype=params[i].dtype)
            with torch.no_grad():
                plus = [p.detach().clone() for p in params]
                minus = [p.detach().clone() for p in params]
                plus[i] += eps * d
                minus[i] -= eps * d
                fd.append(float(_loss(render(*plus), wr, wd, wa, False) - _loss(render(*minus), wr, wd, wa, False)) / (2 * eps))
            an.append(float((grad * d).sum()))
        fd, an = torch.tensor(fd), torch.tensor(an)
        assert float((fd - an).norm() / an.norm()) < rtol, (i, fd, an)


def test_reference_gradients_match_finite_differences_float64():
    scene = [t.double() for t in _scene(n=25, seed=8, opacity=(0.3, 0.9), size=(0.03, 0.06), spread=0.15)]
    V, K = CAMS[:1].double(), _K()[None].double()
    wr, wd, wa = (w.double() for w in _weights(1))

    def render(*p):
        return rasterization_reference(*p, V, K, W, H)

    _fd_check(render, scene, which=[0, 1], wr=wr, wd=wd, wa=wa, eps=1e-7, rtol=1e-4)


def test_cpu_gradients_match_finite_differences():
    # float32 differences need a smooth loss: six large, overlapping, semi-transparent anisotropic
    # Gaussians, 8 cm apart in depth (no reordering), whose 1/255 contours all lie outside the image
    g = torch.Generator().manual_seed(9)
    n = 6
    means = torch.randn(n, 3, generator=g) * 0.03
    means[:, 2] = 0.8 + 0.08 * torch.arange(n)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.tensor([0.25, 0.35, 0.3]) + 0.05 * torch.rand(n, 3, generator=g)
    opac = 0.3 + 0.3 * torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    V, K = torch.eye(4)[None], _K()[None]
    wr, wd, wa = _weights(2)

    def render(*p):
        return rasterization(*p, V, K, W, H, backend="cpu")

    _fd_check(render, [means, quats, scales, opac, colors], which=[0, 1, 2, 3], wr=wr, wd=wd, wa=wa,
              eps=1e-3, rtol=5e-3)


def test_projection_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    from twin.render._projection import project

    means, quats, scales, opac, _ = _scene(n=200, seed=10)
    Ks = torch.stack([_K(), _K(f=60.0)])
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False, triu=False)
    radii_g, means2d_g, depths_g, conics_g, _ = _fully_fused_projection(means, covars, CAMS, Ks, W, H)
    ours = project(means[None].expand(2, -1, -1), quats[None].expand(2, -1, -1), scales[None].expand(2, -1, -1),
                   opac[None].expand(2, -1), CAMS, Ks, W, H, 0.3, 0.01, 1e10, 0.0)
    seen = (radii_g > 0).all(-1)
    assert int(seen.sum()) > 100
    assert torch.allclose(ours.means2d[seen], means2d_g[seen], atol=1e-3)
    assert torch.allclose(ours.depths[seen], depths_g[seen], atol=1e-6)
    assert torch.allclose(ours.conics[seen], conics_g[seen], rtol=1e-3, atol=1e-6)
    # our radii are opacity-aware (as gsplat's CUDA kernels): never larger than the 3.33-sigma box
    assert bool((ours.radii <= radii_g).all())


def test_moving_a_gaussian_moves_the_image():
    V, K = torch.eye(4)[None], _K()[None]
    base = [torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.03),
            torch.tensor([0.9]), torch.ones(1, 3)]

    def centroid(x):
        p = [t.clone() for t in base]
        p[0][0, 0] = x
        a = rasterization(*p, V, K, W, H).alphas[0, ..., 0]
        return float((a * (torch.arange(W) + 0.5)).sum() / a.sum())

    c0, c1 = centroid(0.0), centroid(0.1)
    assert c1 - c0 == pytest.approx(45.0 * 0.1, abs=0.3)  # fx * dx / z


@pytest.mark.parametrize(
    "change, exc",
    [
        (dict(means=torch.zeros(5, 2)), ValueError),
        (dict(quats=torch.zeros(4, 4)), ValueError),
        (dict(scales=torch.zeros(2, 5, 3)), ValueError),
        (dict(opacities=torch.zeros(5, 1)), ValueError),
        (dict(colors=[0.0] * 3), TypeError),
        (dict(viewmats=torch.eye(4)), ValueError),
        (dict(Ks=torch.eye(3)[None].expand(2, 3, 3)), ValueError),
        (dict(width=40.0), TypeError),
        (dict(height=0), ValueError),
        (dict(means=torch.zeros(5, 3, dtype=torch.int64)), TypeError),
        (dict(backend="vulkan"), ValueError),
        (dict(backgrounds=torch.zeros(4)), ValueError),
        (dict(near_plane=-1.0), ValueError),
    ],
)
def test_validation_errors(change, exc):
    kw = dict(means=torch.zeros(5, 3), quats=torch.ones(5, 4), scales=torch.ones(5, 3), opacities=torch.ones(5),
              colors=torch.ones(5, 3), viewmats=torch.eye(4)[None], Ks=_K()[None], width=W, height=H)
    kw.update(change)
    with pytest.raises(exc):
        rasterization(**kw)


def test_gsplat_backend_refused_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    has_cuda_rasterizer.cache_clear()
    try:
        assert has_cuda_rasterizer() is False
        with pytest.raises(ValueError):  # CPU tensors
            rasterization(*_scene(n=3), CAMS, _K()[None].expand(2, 3, 3), W, H, backend="gsplat")
    finally:
        has_cuda_rasterizer.cache_clear()


def test_import_loads_no_backend():
    code = (
        "import sys, twin; before = set(sys.modules); import twin.render, twin.gaussians; "
        "new = set(sys.modules) - before; "
        "bad = [m for m in new if m.split('.')[0] in ('gsplat', 'warp') or m == 'twin.render._warp_kernels']; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gsplat_adapter_batches_worlds_and_cameras(monkeypatch):
    """The gsplat backend's adapter, driven through a stand-in with gsplat.rasterization's contract
    (batch dims [..., N] / [..., C], "RGB+D" = accumulated depth as the last channel)."""
    import gsplat

    from twin.render._api import _finish, _validate
    from twin.render._gsplat import render_gsplat

    calls = []

    def fake(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *, near_plane, far_plane,
             radius_clip, eps2d, packed, tile_size, render_mode, rasterize_mode):
        calls.append((means.shape, viewmats.shape, render_mode, packed, rasterize_mode))
        out = rasterization_reference(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                      near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d)
        meta = {k: out.meta[k] for k in ("radii", "means2d", "depths", "conics")}
        return torch.cat([out.colors, out.depths * out.alphas], -1), out.alphas, meta

    monkeypatch.setattr(gsplat, "rasterization", fake)
    means, quats, scales, opac, colors = _scene(n=40, seed=13, batch=(2,))
    Ks = torch.stack([_K(), _K(f=55.0)])
    bg = torch.tensor([0.3, 0.1, 0.2])
    b = _validate(means, quats, scales[0], opac[0], colors[0], CAMS, Ks, W, H, bg, 0.01, 1e10, 0.3)
    feats, alphas, proj = render_gsplat(b, W, H, 0.01, 1e10, 0.0, 0.3, 16)
    got = _finish(b, feats, alphas, H, W)
    assert calls == [((2, 40, 3), (2, 2, 4, 4), "RGB+D", False, "classic")]  # worlds stay worlds
    want = rasterization(means, quats, scales[0], opac[0], colors[0], CAMS, Ks, W, H, backgrounds=bg)
    assert got[0].shape == (2, 2, H, W, 3)
    assert _max_err(got, want) < 1e-3
    assert torch.equal(proj.radii.reshape(2, 2, 40, 2), want.meta["radii"])


def test_a_broken_gsplat_on_a_cuda_machine_is_an_error_not_an_absence(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "gsplat.cuda._backend":
            raise OSError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    has_cuda_rasterizer.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="fails to load"):
            has_cuda_rasterizer()
    finally:
        has_cuda_rasterizer.cache_clear()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gsplat_matches_cpu_path_psnr():
    assert has_cuda_rasterizer()  # CUDA is here: a broken rasterizer fails this test, never skips it
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
    from render import camera, pusht_scene

    g = pusht_scene(5000)
    w, h = 160, 120
    V, K = camera(w, h)
    cpu = rasterization(g.means, g.quats, g.scales, g.opacities, g.colors, V, K, w, h, backend="cpu")
    gc = g.to("cuda")
    gpu = rasterization(gc.means, gc.quats, gc.scales, gc.opacities, gc.colors, V.cuda(), K.cuda(), w, h)
    assert gpu.meta["backend"] == "gsplat"
    for name in ("colors", "alphas"):
        mse = float(((getattr(gpu, name).cpu() - getattr(cpu, name)) ** 2).mean())
        psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
        print(f"gsplat vs cpu {name}: PSNR {psnr:.1f} dB")
        assert psnr >= 35.0, (name, psnr)
    mask = (cpu.alphas > 0.5) & (gpu.alphas.cpu() > 0.5)
    assert float((gpu.depths.cpu() - cpu.depths)[mask].abs().median()) < 1e-3
