"""The simulated workspace's look and calibration error: drawn per run, seeded, each part switchable."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim_workspace.appearance import (AppearanceGapConfig, CalibrationErrorConfig, CameraPhotometry, draw_appearance,
                                      draw_calibration_error)
from sim_workspace.world import TruthRig, WorldConfig, draw_truth
from twin.rig import DEFAULT_RIG

SERIALS = tuple(c.serial for c in DEFAULT_RIG)
CAMS = {c.serial: (c.intrinsics, c.T_world_camera) for c in DEFAULT_RIG}


def test_the_look_is_seeded_and_differs_between_runs() -> None:
    a = draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(3))
    b = draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(3))
    c = draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(4))
    assert a == b
    assert a.block_colors != c.block_colors and a.table_color != c.table_color and a.tape != c.tape
    hues = [draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(s)).block_hue for s in range(40)]
    assert np.ptp(hues) > 0.8  # any hue
    patterns = {draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(s)).block_pattern for s in range(40)}
    assert patterns == {"plain", "two_tone", "stripes"}


def test_every_part_switches_off_alone() -> None:
    full = draw_appearance(AppearanceGapConfig(), SERIALS, np.random.default_rng(1))
    assert draw_appearance(AppearanceGapConfig(enabled=False), SERIALS, np.random.default_rng(1)) == type(full)()
    cfg = AppearanceGapConfig()
    no_block = draw_appearance(replace(cfg, block=replace(cfg.block, enabled=False)), SERIALS, np.random.default_rng(1))
    assert no_block.block_colors is None and no_block.table_color == full.table_color and no_block.cameras == full.cameras
    no_table = draw_appearance(replace(cfg, table=replace(cfg.table, enabled=False)), SERIALS, np.random.default_rng(1))
    assert no_table.table_color is None and no_table.tape is None and no_table.block_colors == full.block_colors
    no_tape = draw_appearance(replace(cfg, table=replace(cfg.table, tape=False)), SERIALS, np.random.default_rng(1))
    assert no_tape.tape is None and no_tape.markings == full.markings
    no_robot = draw_appearance(replace(cfg, robot=replace(cfg.robot, enabled=False)), SERIALS, np.random.default_rng(1))
    assert no_robot.robot is None and full.robot is not None
    no_light = draw_appearance(replace(cfg, lighting=replace(cfg.lighting, enabled=False)), SERIALS, np.random.default_rng(1))
    assert no_light.cameras == {} and no_light.gradient == (0.0, 0.0) and no_light.block_colors == full.block_colors
    for cam in full.cameras.values():
        assert 0.1 <= cam.vignetting <= 0.3 and all(0.94 <= g <= 1.06 for g in cam.gains)


def test_vignetting_and_white_balance_apply_per_camera() -> None:
    img = np.full((120, 160, 3), 0.5)
    out = CameraPhotometry(gains=(1.05, 1.0, 0.95), vignetting=0.2).apply(img)
    assert out[60, 80] == pytest.approx([0.525, 0.5, 0.475], abs=2e-3)  # centre: white balance only
    assert out[0, 0] == pytest.approx(np.array([0.525, 0.5, 0.475]) * 0.8)  # corner: 20 % darker


def test_the_calibration_is_off_by_the_drawn_error() -> None:
    cfg = CalibrationErrorConfig()
    for seed in range(10):
        told = draw_calibration_error(cfg, CAMS, np.random.default_rng(seed))
        for serial, (intr, T) in told.items():
            true_intr, T_true = CAMS[serial]
            angle = np.rad2deg(np.linalg.norm(Rotation.from_matrix(T[:3, :3] @ T_true[:3, :3].T).as_rotvec()))
            assert 0.1 <= angle <= 0.4
            assert 0.001 <= np.linalg.norm(T[:3, 3] - T_true[:3, 3]) <= 0.004
            assert abs(intr.fx / true_intr.fx - 1) <= 0.005 and intr.fx / true_intr.fx == pytest.approx(intr.fy / true_intr.fy)
            assert (intr.cx, intr.cy) == (true_intr.cx, true_intr.cy)
    exact = draw_calibration_error(replace(cfg, enabled=False), CAMS, np.random.default_rng(0))
    assert all(np.array_equal(T, CAMS[s][1]) and intr == CAMS[s][0] for s, (intr, T) in exact.items())


def test_the_look_leaves_the_physical_gap_as_drawn() -> None:
    cfg = WorldConfig(seed=11, camera_count=3)
    plain = replace(cfg, appearance=AppearanceGapConfig(enabled=False), calibration_error=CalibrationErrorConfig(enabled=False))
    a, b = TruthRig.draw(cfg, np.random.default_rng(11)), TruthRig.draw(plain, np.random.default_rng(11))
    assert a.truth == b.truth and a.lag_s == b.lag_s
    assert draw_truth(cfg, np.random.default_rng(11))[0] == a.truth
    assert set(a.calibrated_cameras) == set(SERIALS)
    assert not np.array_equal(a.calibrated_cameras["sim-cam-0"][1], b.calibrated_cameras["sim-cam-0"][1])
    # the truth renders its own look: the block is not the twin's nominal red
    block = a.renderer.scene.bodies["block"].colors.mean(0).numpy()
    nominal = b.renderer.scene.bodies["block"].colors.mean(0).numpy()
    assert np.abs(block - nominal).max() > 0.05
    with pytest.raises(ValueError, match="camera_count"):
        WorldConfig(camera_count=4)


def test_a_wrist_camera_leaves_the_fixed_cameras_draws_as_they_were() -> None:
    cfg = WorldConfig(seed=5, camera_count=2)
    a = TruthRig.draw(cfg, np.random.default_rng(5))
    b = TruthRig.draw(replace(cfg, wrist_camera=True), np.random.default_rng(5))
    assert set(b.calibrated_cameras) == set(a.calibrated_cameras) | {cfg.wrist.serial}
    for serial, (intr, T) in a.calibrated_cameras.items():
        assert intr == b.calibrated_cameras[serial][0] and np.array_equal(T, b.calibrated_cameras[serial][1])
    assert a.look == b.look and cfg.wrist.serial in b.photometry
