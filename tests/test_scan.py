"""`realsim scan`'s fit of the workspace's appearance, on frames of the harder simulated workspace (its own
look, white balance, vignetting, noise and a calibration that is off), and the scene file it writes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sim_workspace.scan_metrics import block_color_error, held_out_table_psnr
from sim_workspace.world import TruthRig, WorldConfig
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene
from twin.perception.localize import block_color_localizer, localize_block
from twin.perception.scan import SceneScanConfig, scan_scene
from twin.pusht import planar_pose_error
from twin.scene_file import SceneFileError, load_scene, save_scene

torch.set_num_threads(1)


def _frame_sets(rig: TruthRig, cfg: WorldConfig, env: PushTEnv, rng: np.random.Generator, n: int) -> list[dict]:
    """What the twin receives: the truth's frames with the calibration file's (erroneous) cameras."""
    return [rig.frames(env.body_poses()[0], env.link_poses()[0], cfg, rng) for _ in range(n)]


@pytest.fixture(scope="module")
def scanned():
    """Seed 0 of the harder workspace (a striped block), two cameras; the twin scanned from them."""
    cfg = WorldConfig(seed=0, camera_count=2)
    rng = np.random.default_rng(cfg.seed)
    rig = TruthRig.draw(cfg, rng)
    env = PushTEnv(rig.truth)
    env.reset(seed=cfg.seed)
    twin_cfg = TwinConfig()
    twin = PushTEnv(twin_cfg)
    twin.reset(seed=cfg.seed)
    scene = GaussianScene(twin_cfg)
    before = scene.table.colors.clone()
    scan = scan_scene(scene, _frame_sets(rig, cfg, env, rng, 4), twin.body_poses()[0], twin.link_poses()[0],
                      SceneScanConfig())
    assert torch.equal(scene.table.colors, before)  # the scan returns the scene's look; it changes nothing
    scene.apply_scene(scan.data)
    return cfg, rig, env, scene, scan


def test_scan_recovers_the_block_colour_within_five_percent(scanned) -> None:
    cfg, rig, env, scene, scan = scanned
    error, exposure = block_color_error(rig, cfg, scan.data.bodies["block"])
    assert 0.9 < exposure < 1.1, exposure  # the frames' exposure gain is drawn in 0.9-1.1
    assert np.all(np.abs(error) < 0.05), error
    # the block was found by its height (any colour), within the calibration's error of the truth
    pos, yaw = planar_pose_error(scan.block_pose[None], env.observe().block_pose[0])
    assert pos[0] < 0.008 and yaw[0] < np.deg2rad(2.0), (pos, np.rad2deg(yaw))


def test_scan_recovers_the_table_texture_in_a_held_out_view(scanned) -> None:
    cfg, rig, env, scene, scan = scanned
    for serial in scan.psnr_after:
        assert scan.psnr_after[serial] > scan.psnr_before[serial] + 5.0, (scan.psnr_before, scan.psnr_after)
    scanned_psnr = held_out_table_psnr(rig, scene, env.body_poses()[0], env.link_poses()[0])
    assert scanned_psnr >= 25.0
    # what the scan buys: the twin's flat nominal table, even with the best gain per channel, scores lower
    nominal = held_out_table_psnr(rig, GaussianScene(TwinConfig()), env.body_poses()[0], env.link_poses()[0])
    assert scanned_psnr > nominal + 3.0, (scanned_psnr, nominal)


def test_the_scanned_block_colour_localises_the_block(scanned) -> None:
    cfg, rig, env, scene, scan = scanned
    frames = _frame_sets(rig, cfg, env, np.random.default_rng(5), 1)[0]
    localizer = block_color_localizer(scan.data.block_colors, scan.data.bodies["table"].colors.numpy())
    loc = localize_block(frames, scene.twin.block, localizer)
    pos, yaw = planar_pose_error(loc.pose[None], env.observe().block_pose[0])
    assert pos[0] < 0.01 and yaw[0] < np.deg2rad(3.0)
    drawn = rig.look.block_hue * 180.0  # the drawn hue lies in the scanned range (OpenCV 0..179, may wrap)
    lo, hi = localizer.hue_range
    assert (lo <= drawn <= hi) if lo <= hi else (drawn >= lo or drawn <= hi)


def test_scene_file_round_trip_and_the_twin_loads_it(scanned, tmp_path) -> None:
    cfg, rig, env, scene, scan = scanned
    manifest = save_scene(tmp_path / "scene", scan.data)
    data = load_scene(manifest.parent, required_bodies=scene.body_names)
    assert np.allclose(data.block_colors, scan.data.block_colors)
    assert set(data.cameras) == set(scan.data.cameras)
    fresh = GaussianScene(TwinConfig())
    fresh.apply_scene(data)
    for name in scene.body_names:
        a = fresh.table if name == "table" else fresh.bodies[name]
        b = scene.table if name == "table" else scene.bodies[name]
        assert torch.allclose(a.colors, b.colors, atol=1e-6) and torch.allclose(a.means, b.means, atol=1e-6)
    # a measured block of other dimensions keeps the scanned look
    before = fresh.bodies["block"].colors.mean(0)
    fresh.set_block_shape(replace(fresh.twin.block, bar_length_m=0.205))
    assert torch.allclose(fresh.bodies["block"].colors.mean(0), before, atol=0.02)


def test_a_bad_scene_file_is_a_clear_error(scanned, tmp_path) -> None:
    cfg, rig, env, scene, scan = scanned
    folder = save_scene(tmp_path / "scene", scan.data).parent
    with pytest.raises(SceneFileError, match="no scene file"):
        load_scene(tmp_path / "nowhere")
    (folder / "panda_link3.npz").unlink()
    with pytest.raises(SceneFileError, match="panda_link3.*missing"):
        load_scene(folder)
    partial = replace(scan.data, bodies={k: v for k, v in scan.data.bodies.items() if k != "pusher"})
    folder = save_scene(tmp_path / "partial", partial).parent
    with pytest.raises(SceneFileError, match="pusher"):
        load_scene(folder, required_bodies=scene.body_names)
    with pytest.raises(SceneFileError, match="pusher"):
        GaussianScene(TwinConfig()).apply_scene(load_scene(folder))
    # arrays of one body that disagree in shape
    folder = save_scene(tmp_path / "mismatch", scan.data).parent
    with np.load(folder / "block.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["colors"] = arrays["colors"][:-3]
    np.savez(folder / "block.npz", **arrays)
    with pytest.raises(SceneFileError, match="block.*colors has shape"):
        load_scene(folder)


def test_policy_views_render_the_scanned_scene(scanned, tmp_path) -> None:
    """`realsim train --scene`: image observations are rendered with the scanned Gaussians."""
    from policies.learned.images import ObservationRenderer
    from twin.render.scene import SceneRenderer
    from twin.rig import VirtualCameraConfig

    cfg, rig, env, scene, scan = scanned
    folder = save_scene(tmp_path / "scene", scan.data).parent
    view = (VirtualCameraConfig("top", (0.56, -0.08, 0.9), (0.54, 0.0, 0.0), width=64, height=48),)
    twin = PushTEnv(TwinConfig())
    twin.reset(seed=0)
    state = (twin.body_poses(), twin.joint_positions())
    plain = ObservationRenderer(TwinConfig(), view).render(*state)["top"][0].astype(float)
    scanned_view = ObservationRenderer(TwinConfig(), view, scene_path=str(folder)).render(*state)["top"][0].astype(float)
    direct = SceneRenderer(scene)  # the scanned scene itself, drawn for the same view
    direct.set_cameras({"top": (view[0].intrinsics, view[0].T_world_camera)})
    expected = direct.render(twin.body_poses()[0], twin.link_poses()[0])["top"][0].numpy() * 255
    assert np.abs(scanned_view - expected).max() <= 1.0
    assert np.abs(scanned_view - plain).mean() > 3.0


def _tiny_scene(tmp_path):
    from twin.gaussians import sample_plane
    from twin.scene_file import SceneData

    g = sample_plane((0.05, 0.05), spacing=0.01, color=(0.5, 0.4, 0.3))
    return save_scene(tmp_path / "tiny", SceneData(bodies={"table": g, "block": g}, block_colors=((0.8, 0.2, 0.2),),
                                                   cameras={"cam": {"vignetting": 0.1}})).parent


@pytest.mark.parametrize("tamper, message", [
    (lambda m: m["bodies"]["block"].update(file="../tiny/table.npz"), "not a file name inside"),
    (lambda m: m["bodies"]["block"].update(file="/etc/passwd"), "not a file name inside"),
    (lambda m: m.update(bodies=["table"]), "'bodies' must be a mapping"),
    (lambda m: m["cameras"]["cam"].update(vignetting=float("nan")), "vignetting"),
    (lambda m: m["cameras"]["cam"].update(vignetting=0.95), "vignetting"),
    (lambda m: m["block"].update(colors_rgb=[[1.5, 0.0, 0.0]]), "colors_rgb"),
    (lambda m: m.update(format="something else"), "not a realsim scene file"),
    (lambda m: m["bodies"]["block"].update(count=3), "manifest says 3"),
])
def test_a_hostile_manifest_is_refused_with_its_reason(tmp_path, tamper, message) -> None:
    import json

    folder = _tiny_scene(tmp_path)
    manifest = json.loads((folder / "scene.json").read_text())
    tamper(manifest)
    (folder / "scene.json").write_text(json.dumps(manifest))
    with pytest.raises(SceneFileError, match=message):
        load_scene(folder)


def test_hostile_body_arrays_are_refused(tmp_path) -> None:
    folder = _tiny_scene(tmp_path)
    with np.load(folder / "block.npz") as f:
        good = {k: f[k] for k in f.files}
    for key, value, message in (("scales", -good["scales"], "scales must be > 0"),
                                ("colors", good["colors"] + 2.0, "colors must lie in"),
                                ("quats", 0 * good["quats"], "zero norm"),
                                ("means", np.full_like(good["means"], np.nan), "non-finite")):
        np.savez(folder / "block.npz", **{**good, key: value})
        with pytest.raises(SceneFileError, match=message):
            load_scene(folder)
    (folder / "block.npz").write_bytes(b"not a zip file")
    with pytest.raises(SceneFileError, match="not readable"):
        load_scene(folder)
    with pytest.raises(SceneFileError, match="not a scene file"):  # never deletes a folder that is not a scene
        save_scene(tmp_path, load_scene(_tiny_scene(tmp_path / "again")))


def test_block_colour_ranges_wrap_and_refuse_grey() -> None:
    red = block_color_localizer([(0.8, 0.2, 0.2), (0.8, 0.2, 0.3)])
    lo, hi = red.hue_range
    assert lo > hi and lo >= 150 and hi <= 20  # wraps through 0 (OpenCV hue 0..179)
    green = block_color_localizer([(0.2, 0.7, 0.2)])
    assert green.hue_range[0] < 60 < green.hue_range[1]
    lo, hi = block_color_localizer([(0.8, 0.2, 0.2), (0.2, 0.7, 0.7)]).hue_range  # red and cyan: the arc between
    assert lo > hi and lo <= 90 and hi >= 0 and (hi - lo) % 180 >= 90
    with pytest.raises(ValueError, match="saturation"):
        block_color_localizer([(0.6, 0.6, 0.6)])


def test_deploy_and_collect_refuse_a_bad_scene_before_anything_starts(tmp_path, capsys) -> None:
    from launch.cli import main as cli

    folder = _tiny_scene(tmp_path)  # a scene without the robot's links or the pusher
    assert cli(["deploy", "--scene", str(folder), "--episodes", "1", "--out", str(tmp_path / "dep")]) == 2
    err = capsys.readouterr().err
    assert "pusher" in err and not (tmp_path / "dep" / "world.log").exists()
    assert cli(["collect", "--scene", str(tmp_path / "absent"), "--episodes", "1", "--out", str(tmp_path / "col"),
                "--dataset", str(tmp_path / "col-ds"), "--set", "min_free_mb=10"]) == 2
    assert "no scene file" in capsys.readouterr().err and not (tmp_path / "col" / "world.log").exists()
    assert cli(["scan", "--write-calibration", "--out", str(tmp_path / "scan")]) == 2
