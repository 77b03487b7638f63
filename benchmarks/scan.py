"""`realsim scan` on the harder simulated workspace: time, PSNR before/after per camera, the table's
texture in a held-out view, the block's colour, and an unknown object's shape.

    python benchmarks/scan.py                         # seeds 1000-1004, with 1 and with 3 cameras
    python benchmarks/scan.py --seeds 1000 1001 --cameras 3

For each seed (a drawn look: block colour and pattern, textured table, white balance, vignetting, and a
calibration that is off by the drawn error) the truth's frames are rendered as the cameras send them, the
twin (nominal palette) is scanned from ``--frames`` frame sets with ``twin.perception.scan.scan_scene``,
and the scores come from ``sim_workspace.scan_metrics`` (which reads the truth). With three cameras the T
block is also scanned as an unknown object (``twin.perception.object_scan``: masked by height, the arm
masked by the twin's render) and its surface compared with the true T (Chamfer). Last line:
``{"scan_s_median", "scan_s_max", "psnr_before_db", "psnr_after_db", "held_out_psnr_db",
"held_out_psnr_nominal_db", "block_color_error_max", "object_chamfer_mm", "object_chamfer_mm_exact_calibration",
"seeds"}`` (medians over runs, and the worst block colour error over channels and runs; the object's Chamfer
with the drawn calibration error and with the true camera poses; the extrinsics refined against the
scanned scene and the arm, scored against the truth's rig before and after: pose error [mm], [deg], the
mean reprojection error of the table [px] and the error of table positions read off each camera [mm],
``calib_*_before`` / ``calib_*_after``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
import sys

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scan_once(seed: int, cameras: int, frames: int, refine: bool = True) -> dict:
    import time

    from sim_workspace.scan_metrics import block_color_error, held_out_table_psnr
    from sim_workspace.world import TruthRig, WorldConfig
    from twin.config import TwinConfig
    from twin.env import PushTEnv
    from twin.gaussian_scene import GaussianScene
    from twin.perception.scan import scan_scene

    cfg = WorldConfig(seed=seed, camera_count=cameras)
    rng = np.random.default_rng(seed)
    rig = TruthRig.draw(cfg, rng)
    truth = PushTEnv(rig.truth)
    truth.reset(seed=seed)
    bp, lp = truth.body_poses()[0], truth.link_poses()[0]
    frame_sets = [rig.frames(bp, lp, cfg, rng) for _ in range(frames)]
    twin = PushTEnv(TwinConfig())
    twin.reset(seed=seed)
    scene = GaussianScene(TwinConfig())
    t0 = time.perf_counter()
    scan = scan_scene(scene, frame_sets, twin.body_poses()[0], twin.link_poses()[0])
    seconds = time.perf_counter() - t0
    scene.apply_scene(scan.data)
    error, _ = block_color_error(rig, cfg, scan.data.bodies["block"])
    row = {"seed": seed, "cameras": cameras, "scan_s": seconds, "pattern": rig.look.block_pattern,
           "psnr_before_db": float(np.mean(list(scan.psnr_before.values()))),
           "psnr_after_db": float(np.mean(list(scan.psnr_after.values()))),
           "held_out_psnr_db": held_out_table_psnr(rig, scene, bp, lp),
           "held_out_psnr_nominal_db": held_out_table_psnr(rig, GaussianScene(TwinConfig()), bp, lp),
           "block_color_error": float(np.abs(error).max())}
    if refine:
        row.update(refinement(rig, cfg, scene, scan, frame_sets, twin))
    if cameras >= 3:
        row["object_chamfer_mm"] = 1e3 * object_chamfer(rig, cfg, frame_sets, twin, truth)
        exact = replace(rig, calibrated_cameras={c.serial: (c.intrinsics, c.T_world_camera) for c in cfg.active_cameras})
        exact_sets = [exact.frames(bp, lp, cfg, rng) for _ in range(frames)]
        row["object_chamfer_mm_exact_calibration"] = 1e3 * object_chamfer(exact, cfg, exact_sets, twin, truth)
    return row


def refinement(rig, cfg, scene, scan, frame_sets, twin) -> dict:  # noqa: ANN001
    """The extrinsics refined against the scanned scene and the arm: pose and table reprojection errors
    against the truth's rig before and after (means over the cameras)."""
    from sim_workspace.scan_metrics import camera_errors
    from twin.perception.calib_refine import refine_extrinsics

    body = twin.body_poses()[0].copy()
    x, y, yaw = scan.block_pose
    body[0, :2], body[0, 3:] = (x, y), (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
    told = dict(rig.calibrated_cameras)
    result = refine_extrinsics(scene, frame_sets, body, twin.link_poses()[0], told)
    refined = {s: (told[s][0], r.T_world_camera) for s, r in result.items()}
    out = {}
    for name, cams in (("before", told), ("after", refined)):
        errors = camera_errors(cfg, cams)
        for unit in ("mm", "deg", "px", "table_mm"):
            out[f"calib_{unit}_{name}"] = float(np.mean([e[unit] for e in errors.values()]))
    return out


def object_chamfer(rig, cfg, frame_sets, twin, truth) -> float:  # noqa: ANN001
    """The T block scanned as an unknown object (height mask, the twin's arm masked out) vs the true T [m]."""
    from sim_workspace.scan_metrics import t_block_chamfer_m
    from twin.gaussian_scene import GaussianScene
    from twin.perception.object_scan import object_masks, scan_object
    from twin.perception.scan import average_frames
    from twin.render.scene import SceneRenderer

    frames = average_frames(frame_sets)
    renderer = SceneRenderer(GaussianScene(twin.config))
    renderer.set_cameras({s: (f.intrinsics, f.T_world_camera) for s, f in frames.items()})
    occluders = renderer.occluder_masks(twin.body_poses()[0], twin.link_poses()[0])
    masks = object_masks(frames, occluders)
    serials = list(frames)
    obj = scan_object([frames[s] for s in serials], [masks[s] for s in serials])
    pts = obj.surface_points_m @ obj.T_world_body[:3, :3].T + obj.T_world_body[:3, 3]
    return t_block_chamfer_m(pts, rig, truth.observe().block_pose[0])


def main() -> None:
    import torch

    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 3])
    p.add_argument("--frames", type=int, default=4, help="frame sets averaged per scan")
    p.add_argument("--no-refine", action="store_true", help="skip the extrinsics refinement")
    args = p.parse_args()
    rows = []
    for cameras in args.cameras:
        for seed in args.seeds:
            row = scan_once(seed, cameras, args.frames, refine=not args.no_refine)
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    med = lambda key: float(np.median([r[key] for r in rows if key in r]))  # noqa: E731
    for cameras in args.cameras:
        sub = [r for r in rows if r["cameras"] == cameras]
        print(f"{cameras} camera(s): scan {np.median([r['scan_s'] for r in sub]):.1f} s, PSNR "
              f"{np.median([r['psnr_before_db'] for r in sub]):.1f} -> {np.median([r['psnr_after_db'] for r in sub]):.1f} dB, "
              f"held-out table {np.median([r['held_out_psnr_db'] for r in sub]):.1f} dB (nominal palette "
              f"{np.median([r['held_out_psnr_nominal_db'] for r in sub]):.1f}), block colour error <= "
              f"{100 * max(r['block_color_error'] for r in sub):.1f} %")
    for key in ("calib_mm", "calib_deg", "calib_px", "calib_table_mm"):
        pairs = [(r[f"{key}_before"], r[f"{key}_after"]) for r in rows if f"{key}_before" in r]
        if pairs:
            print(f"extrinsics refinement, {key[6:]}: {np.median([p[0] for p in pairs]):.2f} -> {np.median([p[1] for p in pairs]):.2f} "
                  f"(median over runs of the mean over cameras)")
    chamfers = [r["object_chamfer_mm"] for r in rows if "object_chamfer_mm" in r]
    exact = [r["object_chamfer_mm_exact_calibration"] for r in rows if "object_chamfer_mm" in r]
    print(json.dumps({"scan_s_median": med("scan_s"), "scan_s_max": max(r["scan_s"] for r in rows),
                      "psnr_before_db": med("psnr_before_db"), "psnr_after_db": med("psnr_after_db"),
                      "held_out_psnr_db": med("held_out_psnr_db"), "held_out_psnr_nominal_db": med("held_out_psnr_nominal_db"),
                      "block_color_error_max": max(r["block_color_error"] for r in rows),
                      "object_chamfer_mm": float(np.median(chamfers)) if chamfers else None,
                      "object_chamfer_mm_exact_calibration": float(np.median(exact)) if exact else None,
                      **{f"{k}_{w}": med(f"{k}_{w}") if any(f"{k}_{w}" in r for r in rows) else None
                         for k in ("calib_mm", "calib_deg", "calib_px", "calib_table_mm") for w in ("before", "after")},
                      "seeds": args.seeds}))


if __name__ == "__main__":
    main()
