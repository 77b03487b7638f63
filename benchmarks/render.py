"""Renderer throughput: forward and forward+backward frames/s of ``twin.render.rasterization``.

Scene: a PushT workspace seen from ~0.8 m by one camera (RealSense-like 69 degree horizontal field
of view): a 0.8 m x 0.6 m tabletop, the T block, and a Franka-like arm made of cylinders and spheres,
sampled with one spacing so the whole scene holds exactly 5k or 20k Gaussians (~5-9 mm surfels).
The backward pass differentiates a photometric + depth loss w.r.t. all Gaussian parameters.

Usage:
    python benchmarks/render.py                 # all four sizes on the current device (cuda if present)
    python benchmarks/render.py --device cpu --seconds 1
The last line is JSON: {"fwd_fps": {"5k@160x120": ...}, "fwd_bwd_fps": {...}, "device": "..."}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from twin.gaussians import GaussianSet, sample_box, sample_cylinder, sample_plane, sample_sphere  # noqa: E402
from calibration import look_at  # noqa: E402
from twin.render import rasterization, viewmat_from_pose  # noqa: E402

SIZES = {"5k": 5000, "20k": 20000}
RESOLUTIONS = {"160x120": (160, 120), "480x270": (480, 270)}
HFOV_DEG = 69.0


def _yaw(deg: float) -> tuple[float, float, float, float]:
    h = math.radians(deg) / 2
    return (math.cos(h), 0.0, 0.0, math.sin(h))


def _tilt(deg: float) -> tuple[float, float, float, float]:
    h = math.radians(deg) / 2
    return (math.cos(h), math.sin(h), 0.0, 0.0)


def _scene_parts(spacing: float, seed: int) -> GaussianSet:
    parts = [
        sample_plane((0.8, 0.6), spacing=spacing, color=(0.55, 0.45, 0.35), jitter=0.5, seed=seed),
        # T block: bar 0.20 x 0.05, stem 0.05 x 0.15, 0.04 thick
        sample_box((0.20, 0.05, 0.04), spacing=spacing, color=(0.85, 0.2, 0.2), seed=seed)
        .transformed(torch.tensor([0.05, 0.05, 0.02]), torch.tensor(_yaw(20))),
        sample_box((0.05, 0.15, 0.04), spacing=spacing, color=(0.85, 0.2, 0.2), seed=seed)
        .transformed(torch.tensor([0.05 + 0.1 * math.sin(math.radians(20)), 0.05 - 0.1 * math.cos(math.radians(20)), 0.02]),
                     torch.tensor(_yaw(20))),
        # arm: base, two links, wrist and a pusher
        sample_cylinder(0.07, 0.3, spacing=spacing, color=(0.9, 0.9, 0.9)).transformed(
            torch.tensor([-0.35, 0.2, 0.15]), torch.tensor((1.0, 0.0, 0.0, 0.0))),
        sample_cylinder(0.055, 0.35, spacing=spacing, color=(0.9, 0.9, 0.9)).transformed(
            torch.tensor([-0.25, 0.15, 0.38]), torch.tensor(_tilt(60))),
        sample_sphere(0.07, spacing=spacing, color=(0.2, 0.2, 0.2)).transformed(
            torch.tensor([-0.1, 0.1, 0.42]), torch.tensor((1.0, 0.0, 0.0, 0.0))),
        sample_cylinder(0.045, 0.3, spacing=spacing, color=(0.9, 0.9, 0.9)).transformed(
            torch.tensor([-0.05, 0.05, 0.27]), torch.tensor(_tilt(-15))),
        sample_cylinder(0.01, 0.1, spacing=spacing, color=(0.1, 0.1, 0.1)).transformed(
            torch.tensor([-0.02, 0.0, 0.08]), torch.tensor((1.0, 0.0, 0.0, 0.0))),
    ]
    return GaussianSet.cat(parts)


def pusht_scene(n: int, seed: int = 0) -> GaussianSet:
    """Exactly ``n`` Gaussians of a tabletop, a T block and a robot arm (world frame, z up, table at z = 0)."""
    spacing = 0.01
    for _ in range(3):  # the count goes as 1 / spacing^2
        spacing *= math.sqrt(len(_scene_parts(spacing, seed)) / n)
    scene = _scene_parts(spacing, seed)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(scene), size=n, replace=len(scene) < n)
    idx = torch.from_numpy(np.sort(idx))
    return scene.select(idx)


def camera(width: int, height: int, distance: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """viewmat [1, 4, 4] (world -> camera, OpenCV) looking at the table centre from ``distance`` m,
    45 degrees above the table, and K [1, 3, 3] with a 69 degree horizontal field of view."""
    a = math.radians(45)
    T_world_camera = torch.as_tensor(look_at([0.0, -distance * math.cos(a), distance * math.sin(a)], (0.0, 0.0, 0.0)),
                                     dtype=torch.float32)
    f = 0.5 * width / math.tan(math.radians(HFOV_DEG) / 2)
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return viewmat_from_pose(T_world_camera)[None], K[None]


def _rate(fn, seconds: float, sync) -> float:
    fn()  # warm-up (kernel compilation, caches)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        sync()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fwd, fwd_bwd = {}, {}
    for sname, n in SIZES.items():
        g = pusht_scene(n).to(device)
        for rname, (w, h) in RESOLUTIONS.items():
            V, K = (t.to(device) for t in camera(w, h))
            params = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
            target_rgb = torch.rand(1, h, w, 3, device=device)

            def render():
                with torch.no_grad():
                    rasterization(g.means, g.quats, g.scales, g.opacities, g.colors, V, K, w, h)

            def render_backward():
                rgb, depth, alpha, meta = rasterization(*params, V, K, w, h)
                loss = (rgb - target_rgb).abs().mean() + 0.1 * depth.mean()
                loss.backward()

            key = f"{sname}@{rname}"
            fwd[key] = round(_rate(render, args.seconds, sync), 2)
            fwd_bwd[key] = round(_rate(render_backward, args.seconds, sync), 2)
            with torch.no_grad():
                out = rasterization(g.means, g.quats, g.scales, g.opacities, g.colors, V, K, w, h)
            on_screen = float((out.meta["radii"] > 0).all(-1).float().mean())
            print(f"{key}: fwd {fwd[key]} fps, fwd+bwd {fwd_bwd[key]} fps, on screen {on_screen:.0%}, "
                  f"mean alpha {float(out.alphas.mean()):.2f}", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    print(json.dumps({"fwd_fps": fwd, "fwd_bwd_fps": fwd_bwd, "device": name}))


if __name__ == "__main__":
    main()
