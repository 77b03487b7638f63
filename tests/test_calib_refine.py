"""Photometric refinement of camera extrinsics on synthetic frames: a textured table and a banded robot
rendered from the true cameras with sensor noise and exposure drift, refined from a perturbed
calibration."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from calibration import rigid_pose_error
from sim_workspace.views import SensorNoiseConfig, render_frames
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.gaussians import GaussianSet
from twin.perception.calib_refine import CalibRefineConfig, refine_extrinsics, twist_pose
from twin.render.scene import SceneRenderer
from twin.rig import DEFAULT_RIG

ERROR_M = 0.003
ERROR_RAD = float(np.deg2rad(0.3))
NOISE = SensorNoiseConfig(exposure_gain_range=(0.9, 1.1))


def textured_scene() -> GaussianScene:
    """The default scene with a table of smooth noise crossed by a few dark tape lines, and white robot
    links with dark bands (the last link dark), all colours functions of position."""
    scene = GaussianScene(TwinConfig(), GaussianSceneConfig())
    t = scene.table
    xy = t.means[:, :2].double().numpy()
    rng = np.random.default_rng(3)
    v = np.zeros(len(xy))
    for _ in range(12):
        v += np.sin(xy @ rng.normal(0.0, 25.0, 2) + rng.uniform(0.0, 2 * np.pi))
    v = 0.45 + 0.06 * v
    for _ in range(6):
        n = rng.normal(size=2)
        n /= np.linalg.norm(n)
        v[np.abs(xy @ n - np.array([0.5, 0.0]) @ n - rng.uniform(-0.2, 0.2)) < 0.005] = 0.08
    colors = torch.as_tensor(np.clip(np.stack([v, 0.97 * v, 0.92 * v], 1), 0.0, 1.0), dtype=t.colors.dtype)
    scene.replace_body("table", GaussianSet(t.means, t.quats, t.scales, t.opacities, colors))
    white, dark = torch.tensor([0.92, 0.92, 0.92]), torch.tensor([0.12, 0.12, 0.13])
    for k in range(8):
        g = scene.bodies[f"panda_link{k}"]
        band = (torch.remainder(10.0 * g.means[:, 2] + 0.03 * k, 1.0) < 0.25) | (k == 7)
        colors = torch.where(band[:, None], dark, white).to(g.colors.dtype)
        scene.replace_body(f"panda_link{k}", GaussianSet(g.means, g.quats, g.scales, g.opacities, colors))
    return scene


@pytest.fixture(scope="module")
def world() -> dict:
    scene = textured_scene()
    env = PushTEnv(TwinConfig())
    states = []
    for seed in (1, 2):
        env.reset(seed=seed)
        states.append((env.body_poses()[0], env.link_poses()[0]))
    renderer = SceneRenderer(scene)
    renderer.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG})
    rng = np.random.default_rng(0)
    frame_sets = [render_frames(renderer, bp, lp, DEFAULT_RIG, NOISE, rng) for bp, lp in states]
    return {"scene": scene, "states": states, "frame_sets": frame_sets}


def perturbed(cameras, rng: np.random.Generator, error_m: float = ERROR_M,
              error_rad: float = ERROR_RAD) -> dict[str, tuple]:
    """Each camera's calibration moved by ``error_m`` and turned by ``error_rad`` in a random direction."""
    out = {}
    for c in cameras:
        t, r = rng.normal(size=3), rng.normal(size=3)
        delta = np.r_[error_m * t / np.linalg.norm(t), error_rad * r / np.linalg.norm(r)]
        out[c.serial] = (c.intrinsics, c.T_world_camera @ twist_pose(delta))
    return out


def errors_mm_deg(T: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    dt, dr = rigid_pose_error(T, T_true)
    return 1e3 * dt, float(np.rad2deg(dr))


def refine_and_check(world: dict, cameras, sets: list[int], rng: np.random.Generator, **error) -> dict:
    start = perturbed(cameras, rng, **error)
    states = [world["states"][s] for s in sets]
    t0 = time.perf_counter()
    results = refine_extrinsics(world["scene"], [world["frame_sets"][s] for s in sets],
                                np.stack([b for b, _ in states]), np.stack([lk for _, lk in states]), start)
    seconds = time.perf_counter() - t0
    for c in cameras:
        res = results[c.serial]
        before = errors_mm_deg(start[c.serial][1], c.T_world_camera)
        after = errors_mm_deg(res.T_world_camera, c.T_world_camera)
        print(f"{c.serial}: {before[0]:.2f} mm {before[1]:.3f} deg -> {after[0]:.2f} mm {after[1]:.3f} deg, "
              f"loss {res.loss_before:.4f} -> {res.loss_after:.4f}, {res.iterations} iterations, "
              f"converged {res.converged}, {res.seconds:.2f} s")
        assert after[0] <= 0.5 * before[0] and after[1] <= 0.5 * before[1], (c.serial, before, after)
        assert res.converged and res.loss_after < res.loss_before
        assert np.allclose(res.T_world_camera, start[c.serial][1] @ twist_pose(res.delta), atol=1e-9)
        assert res.translation_mm == pytest.approx(1e3 * np.linalg.norm(res.delta[:3]))
    print(f"{seconds / len(cameras):.2f} s per camera ({len(sets)} frame set(s))")
    return results


def test_a_3mm_03deg_error_is_at_least_halved(world) -> None:
    refine_and_check(world, DEFAULT_RIG[:2], [0], np.random.default_rng(42))


def test_a_correct_calibration_stays(world) -> None:
    cam = DEFAULT_RIG[1]
    res = refine_extrinsics(world["scene"], world["frame_sets"][:1], *world["states"][0],
                            {cam.serial: (cam.intrinsics, cam.T_world_camera)})[cam.serial]
    moved = errors_mm_deg(res.T_world_camera, cam.T_world_camera)
    print(f"{cam.serial}: moved {moved[0]:.3f} mm {moved[1]:.4f} deg in {res.seconds:.2f} s")
    assert moved[0] < 0.5 and moved[1] < 0.05
    assert res.translation_mm == pytest.approx(moved[0], abs=1e-6)


def test_inputs_are_checked(world) -> None:
    cam = DEFAULT_RIG[0]
    cameras = {cam.serial: (cam.intrinsics, cam.T_world_camera)}
    bp, lp = world["states"][0]
    with pytest.raises(ValueError, match="body_poses"):
        refine_extrinsics(world["scene"], world["frame_sets"][:1], bp[:1], lp, cameras)
    with pytest.raises(ValueError, match="no frame set"):
        refine_extrinsics(world["scene"], [{}], bp, lp, cameras)
    small = {cam.serial: (cam.intrinsics.scaled(cam.width // 2, cam.height // 2), cam.T_world_camera)}
    with pytest.raises(ValueError, match="does not match"):
        refine_extrinsics(world["scene"], world["frame_sets"][:1], bp, lp, small)
    with pytest.raises(ValueError):
        CalibRefineConfig(levels=())


@pytest.mark.slow
def test_all_cameras_over_two_robot_states(world) -> None:
    refine_and_check(world, DEFAULT_RIG, [0, 1], np.random.default_rng(7))


@pytest.mark.slow
def test_a_10mm_1deg_error_converges_within_a_millimetre(world) -> None:
    results = refine_and_check(world, DEFAULT_RIG, [0], np.random.default_rng(8), error_m=0.010,
                               error_rad=float(np.deg2rad(1.0)))
    for c in DEFAULT_RIG:
        mm, deg = errors_mm_deg(results[c.serial].T_world_camera, c.T_world_camera)
        assert mm < 1.0 and deg < 0.1, (c.serial, mm, deg)
