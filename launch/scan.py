"""`realsim scan`: the workspace's appearance from the calibrated cameras, into a scene file that `deploy`
and `collect` load with ``--scene``.

Usage::

    realsim scan                                   # starts the simulated workspace, scans it -> <out>/scene
    realsim scan --out runs/scan-lab --frames 8    # more frame sets averaged
    realsim scan --object mug                      # also builds the unknown object standing on the table
    realsim scan --refine-calibration              # and reports how far each camera's extrinsics seem off
    realsim scan --refine-calibration --write-calibration   # ... and writes the refined ones back
    realsim deploy --scene runs/scan-lab/scene     # the twin then renders the scanned scene
    realsim scan --config setups/lab.yaml          # hardware: start_world=false and live.links.* as for deploy

The robot is driven to the twin's start pose and the block must lie still (on the simulated workspace the
block is placed by its control channel with seed ``live.seed``); the arm stays in view and is fitted too.
The run folder receives ``scene/`` (the scene file: ``scene.json`` and one ``.npz`` per body), one
``scan_<serial>.png`` per camera (observed | before | after), ``scan.json`` (PSNR before and after per
camera, the block's pose, the time) and the resolved config. Exit status 0 on success, 1 when the robot
or the cameras are not there or nothing could be scanned, 2 on a bad config.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sim_workspace.world import WorldConfig
from twin.live import LiveConfig
from twin.perception.object_scan import ObjectScanConfig

from ._common import add_config_arguments, make_run_dir, quiet_libraries, resolve_device

log = logging.getLogger("realsim.scan")


@dataclass(frozen=True)
class ScanJobConfig:
    """`realsim scan`: the links (``live.links``, as for deploy), the scan's settings (``live.scanner``,
    ``live.scan_frames``) and, for ``--object``, the object scan's (``object``)."""

    live: LiveConfig = field(default_factory=LiveConfig)
    start_world: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)
    object: ObjectScanConfig = field(default_factory=ObjectScanConfig)
    device: str = "auto"
    world_start_timeout_s: float = 120.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="scan the workspace's appearance into a scene file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-scan)")
    p.add_argument("--frames", type=int, default=None, help="frame sets averaged (default 4)")
    p.add_argument("--object", default=None, metavar="NAME",
                   help="also build the unknown rigid object on the table (masked by height, any colour) as NAME")
    p.add_argument("--refine-calibration", action="store_true",
                   help="after the scan, refine each camera's extrinsics photometrically against the scanned scene "
                        "and the arm (known kinematics); reports the correction in mm and degrees")
    p.add_argument("--write-calibration", action="store_true",
                   help="with --refine-calibration: write the refined extrinsics into the calibration file (the old "
                        "file is kept as <file>.bak)")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config
    from launch.deploy import start_world, stop_process
    from policies.registry import make_policy
    from sim_workspace.clients import clients_for
    from twin.live import LiveLinkError, LiveRunner
    from twin.perception.localize import LocalizationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s scan %(levelname)s %(message)s")
    quiet_libraries()
    overrides = list(args.overrides) + ([f"live.scan_frames={args.frames}"] if args.frames is not None else [])
    if args.write_calibration and not args.refine_calibration:
        print("realsim scan: --write-calibration writes what --refine-calibration finds: pass both", file=sys.stderr)
        return 2
    cfg = load_config(ScanJobConfig, args.config, overrides)
    if cfg.live.scan_frames < 1:
        print("realsim scan: live.scan_frames must be >= 1", file=sys.stderr)
        return 2
    device = resolve_device(cfg.device)
    cfg = replace(cfg, live=replace(cfg.live, scene_path="", scan=True, episodes=1, refine_calibration=args.refine_calibration,
                                    twin=replace(cfg.live.twin, device=device, num_worlds=1)),
                  world=cfg.world.hands_off())
    out = make_run_dir("scan", args.out)
    world = runner = None
    try:
        if cfg.start_world:
            log.info("starting the simulated workspace (log: %s)", out / "world.log")
            world, cfg = start_world(cfg, out)
        save_config(cfg, out / "config.yaml")
        control, _ = clients_for(cfg.live.links.control_endpoint, "")
        runner = LiveRunner(cfg.live, make_policy("expert", cfg.live.twin), device=device, world=control)
        runner.start()
        runner.streamer.move_to(runner.twin.q_start, cfg.live.robot.reset_speed_rad_s, cfg.live.robot.reset_tolerance_rad)
        if control is not None:
            control.reset(cfg.live.seed)
        else:
            runner.prompt("Place the T block in the workspace, move away, then press Enter. ")
        time.sleep(0.3)  # frames taken before the reset are still in flight
        runner.scan(cfg.live.seed)
        scan = runner.scan_result
        data = scan.data
        if args.object:
            data.objects[args.object] = _scan_object(runner, cfg)
        from twin.scene_file import save_scene

        manifest = save_scene(out / "scene", data)
        refined = _report_refinement(runner, cfg, args.write_calibration) if args.refine_calibration else None
        _write_report(out, scan, manifest, refined)
    except (LiveLinkError, LocalizationError, TimeoutError, RuntimeError, ValueError) as exc:
        print(f"realsim scan: {exc}", file=sys.stderr)
        return 1
    finally:
        if runner is not None:
            runner.close()
        stop_process(world)
    return 0


def _scan_object(runner, cfg: ScanJobConfig):  # noqa: ANN001, ANN202 - LiveRunner -> ScannedBody
    """The unknown object on the table: what stands above it in the depth images, less the arm."""
    from twin.perception.object_scan import object_masks, scan_object
    from twin.perception.scan import average_frames
    from twin.scene_file import ScannedBody

    frames = average_frames([{s: f for s, f in runner._fresh_frames(timeout_s=2.0).items() if f.T_world_camera is not None}
                             for _ in range(cfg.live.scan_frames)])
    occluders = runner.corrector.occluder_masks(runner.twin.body_poses()[0], runner.twin.link_poses()[0])
    masks = object_masks(frames, occluders, cfg.live.twin.physics.table_height_m)
    serials = list(frames)
    if len(serials) < 2:
        log.warning("an object scanned by one camera has no back: its far side is guessed (use 2-3 cameras)")
    obj = scan_object([frames[s] for s in serials], [masks[s] for s in serials], cfg.object)
    log.info("object: %d particles, %d Gaussians, volume %.1f cm^3", len(obj.particles_m), len(obj.gaussians),
             obj.volume_m3 * 1e6)
    return ScannedBody(obj.gaussians, obj.particles_m, obj.particle_radius_m, obj.T_world_body)


def _report_refinement(runner, cfg: ScanJobConfig, write: bool) -> dict:  # noqa: ANN001
    """The extrinsics the scan refined against the scanned scene and the arm (``scene_setup.refine_cameras``),
    printed and written back on request."""
    import shutil

    import numpy as np

    from calibration import load_calibration, save_calibration

    result = runner.calibration_refinement
    for serial, r in result.items():
        print(f"{serial}: extrinsics off by {r.translation_mm:.2f} mm and {r.rotation_deg:.3f} deg "
              f"(image loss {r.loss_before:.4f} -> {r.loss_after:.4f}{'' if r.converged else ', not converged'})")
    if write:
        path = Path(cfg.live.links.calibration_path)
        setup = load_calibration(path)
        shutil.copy2(path, path.with_name(path.name + ".bak"))
        for serial, r in result.items():
            cam = setup.cameras[serial]
            cam.T_world_camera = r.T_world_camera
            cam.residuals = {**cam.residuals, "photometric_refinement_mm": r.translation_mm,
                             "photometric_refinement_deg": r.rotation_deg}
        save_calibration(setup, path)
        print(f"refined extrinsics written to {path} (previous: {path.name}.bak)")
    return {s: {"translation_mm": r.translation_mm, "rotation_deg": r.rotation_deg, "converged": r.converged,
                "T_world_camera": np.asarray(r.T_world_camera).tolist()} for s, r in result.items()}


def _write_report(out: Path, scan, manifest: Path, refined: dict | None = None) -> None:  # noqa: ANN001 - SceneScan
    import cv2
    import numpy as np

    for serial, (observed, before, after) in scan.images.items():
        strip = np.concatenate([observed, before, after], axis=1)
        cv2.imwrite(str(out / f"scan_{serial}.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    report = {"scene": str(manifest), "seconds": scan.seconds, "block_pose": [float(x) for x in scan.block_pose],
              "psnr_before_db": scan.psnr_before, "psnr_after_db": scan.psnr_after,
              "block_colors_rgb": [list(c) for c in scan.data.block_colors], "table_heights_moved": scan.table_heights_moved,
              "calibration_refinement": refined}
    (out / "scan.json").write_text(json.dumps(report, indent=1))
    for serial in scan.images:
        print(f"{serial}: PSNR {scan.psnr_before[serial]:.1f} dB -> {scan.psnr_after[serial]:.1f} dB "
              f"(images: {out / f'scan_{serial}.png'})")
    print(f"scene file: {manifest.parent}  ({scan.seconds:.1f} s); use it with --scene {manifest.parent}")
