"""What the live loop learns about the workspace before its first episode: the scene's look (a scan, or a
scene file) and the real block's dimensions. Functions of a ``LiveRunner`` (its links, twin, corrector,
tracker and policy), kept apart from the loop itself."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

__all__ = ["use_scene", "scan_workspace", "refine_cameras", "measure_block"]

log = logging.getLogger("twin.live")


def use_scene(runner, data) -> None:  # noqa: ANN001 - LiveRunner, twin.scene_file.SceneData
    """Render the twin with a scanned scene and find its block by the scanned colours (a block too pale to
    segment by colour keeps the configured localiser, with a warning)."""
    from ..perception.localize import block_color_localizer

    localizer = runner.config.localizer
    if data.block_colors:
        try:
            localizer = block_color_localizer(data.block_colors, data.bodies["table"].colors.numpy(), localizer)
        except ValueError as exc:
            log.warning("the block is found with the configured colours (live.localizer): %s", exc)
    runner.corrector.apply_scene(data)
    runner.scene_data = data
    runner.localizer = runner.tracker.localizer = localizer


def scan_workspace(runner, seed: int) -> None:  # noqa: ANN001 - LiveRunner
    """Scan the workspace's appearance (the block at rest, the arm at the robot's joints)."""
    from ..perception.scan import scan_scene

    cfg = runner.config
    frame_sets = [{s: f for s, f in runner._fresh_frames(timeout_s=2.0).items() if f.T_world_camera is not None}
                  for _ in range(cfg.scan_frames)]  # the fixed cameras (a wrist camera's frames carry no pose)
    q_robot = runner.streamer.robot_q()
    runner.twin.reset(seed=seed, options={"joint_pos": (q_robot if q_robot is not None else runner.twin.q_start)[None]})
    scan = scan_scene(runner.corrector.scene, frame_sets, runner.twin.body_poses()[0], runner.twin.link_poses()[0], cfg.scanner)
    runner.scan_result = scan
    runner.use_scene(scan.data)
    log.info("scanned the scene in %.1f s: PSNR %s dB (before: %s)", scan.seconds,
             {s: round(v, 1) for s, v in scan.psnr_after.items()}, {s: round(v, 1) for s, v in scan.psnr_before.items()})
    if cfg.refine_calibration:
        runner.calibration_refinement = refine_cameras(runner, frame_sets, scan.block_pose)


def refine_cameras(runner, frame_sets: list, block_pose: np.ndarray) -> dict:  # noqa: ANN001 - LiveRunner
    """Refine the static cameras' extrinsics against the twin's (scanned) scene, its arm and the block at
    ``block_pose`` (x [m], y [m], yaw [rad]), and use them from now on: the correction's renders and the
    camera stream's frames (the calibration file is not changed). Returns serial -> ``ExtrinsicsRefinement``;
    a camera whose refinement did not lower its image loss keeps its pose."""
    from ..perception.calib_refine import refine_extrinsics

    cal = runner.calibration
    static = {s: (cal.camera(s).intrinsics, cal.camera(s).T_world_camera) for s in cal.serials if cal.camera(s).mount == "static"}
    sets = [{s: f for s, f in fs.items() if s in static} for fs in frame_sets]
    from ..transforms import yaw_to_quat_wxyz

    body = runner.twin.body_poses()[0].copy()
    body[0, :2], body[0, 3:] = block_pose[:2], yaw_to_quat_wxyz(block_pose[2])
    result = refine_extrinsics(runner.corrector.scene, sets, body, runner.twin.link_poses()[0], static)
    for serial, r in result.items():
        if not r.loss_after < r.loss_before:
            log.warning("camera %s: the extrinsics refinement did not lower the image loss; its calibration is kept", serial)
            continue
        cal = cal.with_camera(replace(cal.camera(serial), T_world_camera=np.asarray(r.T_world_camera)))
        log.info("camera %s: extrinsics refined by %.2f mm and %.3f deg (image loss %.4f -> %.4f)", serial,
                 r.translation_mm, r.rotation_deg, r.loss_before, r.loss_after)
    runner.set_calibration(cal)
    return result


def measure_block(runner, seed: int) -> None:  # noqa: ANN001 - LiveRunner
    """Measure the real block's dimensions (the block at rest, the twin's block corrected onto it) and
    give the twin, its Gaussians and the policy that block, placed at the measured pose."""
    from ..perception.shape_fit import block_dims, fit_block_shape

    cfg = runner.config
    frame_sets = [runner._fresh_frames(timeout_s=2.0) for _ in range(cfg.shape_fit_frames)]
    nominal = cfg.twin.block
    fit = fit_block_shape(runner.corrector, frame_sets, runner.twin.body_poses()[0], runner.twin.link_poses()[0],
                          nominal, cfg.shape_fit)
    runner.block_fit = fit
    dims, nominal_dims = np.array(block_dims(fit.shape)), np.array(block_dims(nominal))
    at_limit = np.abs(dims - nominal_dims) >= cfg.shape_fit.max_change_m - 1e-6
    if not fit.loss_after < fit.loss_before or np.any(at_limit):
        runner.counters["block_measurement_rejected"] += 1
        log.warning("the block's measurement is not used (image loss %.4f -> %.4f, dimensions %s mm): the twin "
                    "keeps the nominal block", fit.loss_before, fit.loss_after, np.round(dims * 1e3, 1))
        return
    log.info("measured block: bar %.1f x %.1f mm, stem %.1f x %.1f mm (nominal %.0f x %.0f, %.0f x %.0f); image "
             "loss %.4f -> %.4f", *(dims * 1e3)[[0, 1, 2, 3]], *(nominal_dims * 1e3), fit.loss_before, fit.loss_after)
    q = runner.twin.joint_positions()[0]
    runner.config = replace(cfg, twin=replace(cfg.twin, block=fit.shape))
    runner.twin.set_block_shape(fit.shape)
    runner.twin.reset(seed=seed, options={"block_pose": fit.pose[None], "joint_pos": q[None]})
    runner.corrector.set_block_shape(fit.shape)
    runner.policy.set_twin_config(runner.twin.config)
    runner.tracker.set_block(fit.shape)
