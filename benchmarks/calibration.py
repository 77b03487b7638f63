"""Calibration accuracy on synthetic board images with noise and blur (ground truth known).

    python benchmarks/calibration.py
    python benchmarks/calibration.py --noise-std 3 --blur-px 1.0 --poses 15 --seeds 5

Extrinsics: a 1280x720 camera looking at a 9x6 (50 mm) board lying at a known world pose, three
noisy views. Hand-eye: eye-to-hand, a 640x480 camera and a 7x5 (30 mm) board on the flange, 15
robot poses. Errors are the worst over ``--seeds`` data sets. Prints figures, then as its last line
JSON: {"extrinsics_pos_err_mm", "extrinsics_rot_err_deg", "handeye_pos_err_mm", "handeye_rot_err_deg",
"reproj_rms_px"} (reproj_rms_px: the hand-eye joint reprojection RMS, worst seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise-std", type=float, default=2.0, help="Gaussian pixel noise [grey levels]")
    ap.add_argument("--blur-px", type=float, default=0.7, help="Gaussian blur sigma [px]")
    ap.add_argument("--poses", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)

    from calibration import (
        BoardNotFoundError,
        CameraIntrinsics,
        CharucoBoardSpec,
        calibrate_hand_eye,
        detect_board,
        estimate_extrinsics,
        invert_pose,
        look_at,
        make_pose,
        rigid_pose_error,
        render_board_view,
        rotvec_to_matrix,
        synthetic_hand_eye_views,
    )

    t0 = time.perf_counter()
    # Extrinsics.
    intr_x = CameraIntrinsics(910.0, 910.0, 639.5, 359.5, 1280, 720)
    spec_x = CharucoBoardSpec(squares_x=9, squares_y=6, square_length_m=0.05, marker_length_m=0.037)
    T_wc = look_at([0.9, 0.3, 0.7], [0.45, 0.0, 0.0])
    T_wb = make_pose(rotvec_to_matrix([np.pi, 0.0, 0.0]), [0.225, 0.15, 0.0])
    T_cb = invert_pose(T_wc) @ T_wb
    ext = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        dets = [detect_board(render_board_view(spec_x, intr_x, T_cb, noise_std=args.noise_std,
                                               blur_sigma_px=args.blur_px, rng=rng), spec_x) for _ in range(3)]
        r = estimate_extrinsics(dets, intr_x, T_wb)
        dt, dr = rigid_pose_error(r.T_world_camera, T_wc)
        ext.append((dt * 1000.0, np.degrees(dr), r.reprojection_rms_px))
        print(f"extrinsics seed {seed}: {dt * 1000:.3f} mm {np.degrees(dr):.4f} deg rms {r.reprojection_rms_px:.3f} px")
    # Hand-eye (eye-to-hand).
    intr_h = CameraIntrinsics(610.0, 610.0, 319.5, 239.5, 640, 480)
    spec_h = CharucoBoardSpec(squares_x=7, squares_y=5, square_length_m=0.03, marker_length_m=0.022)
    he = []
    for seed in range(args.seeds):
        ds = synthetic_hand_eye_views(spec_h, intr_h, "eye_to_hand", args.poses, noise_std=args.noise_std,
                                      blur_sigma_px=args.blur_px, seed=seed)
        poses, dets = [], []
        for T, im in zip(ds.T_world_flange, ds.images, strict=True):
            try:
                dets.append(detect_board(im, spec_h))
                poses.append(T)
            except BoardNotFoundError:
                pass  # as in a real session: a view without the board is skipped
        r = calibrate_hand_eye(poses, mode="eye_to_hand", detections=dets, intrinsics=intr_h)
        dt, dr = rigid_pose_error(r.T_world_camera, ds.T_world_camera)
        he.append((dt * 1000.0, np.degrees(dr), r.reprojection_rms_px))
        print(f"hand-eye seed {seed} ({len(dets)}/{args.poses} views): {dt * 1000:.3f} mm {np.degrees(dr):.4f} deg rms {r.reprojection_rms_px:.3f} px "
              f"consistency {r.consistency_pos_mm:.2f} mm {r.consistency_rot_deg:.3f} deg")
    ext_a, he_a = np.array(ext), np.array(he)
    result = {
        "extrinsics_pos_err_mm": round(float(ext_a[:, 0].max()), 4),
        "extrinsics_rot_err_deg": round(float(ext_a[:, 1].max()), 5),
        "handeye_pos_err_mm": round(float(he_a[:, 0].max()), 4),
        "handeye_rot_err_deg": round(float(he_a[:, 1].max()), 5),
        "reproj_rms_px": round(float(he_a[:, 2].max()), 4),
    }
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; noise {args.noise_std} grey levels, blur {args.blur_px} px; "
          f"{args.seeds} seeds; {time.perf_counter() - t0:.1f} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
