"""Visual-force correction on synthetic observations.

    python benchmarks/correction.py                      # one 160x120 camera (the CPU goal)
    python benchmarks/correction.py --cameras 3 --width 480 --height 270

Observations are rendered from a *true* block pose with a *different* sampling of Gaussians plus sensor
noise; the twin's block starts 3 cm and 15 degrees off and is pulled back only by visual forces. Then
the true block is pushed at 5 cm/s by a pusher the twin does not know about (its own pusher stays
parked), and the twin must track it. Last line:
``{"frames_to_converge", "final_pos_err_mm", "final_yaw_err_deg", "tracking_pos_err_mm", "correction_hz", "device"}``
(tracking error: median over the tracking phase after its first quarter; its p95 is printed too).
"""

from __future__ import annotations

import argparse
import os
import sys
import json
from dataclasses import replace

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=1, choices=[1, 2, 3])
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--frames", type=int, default=40, help="frames for the convergence phase")
    parser.add_argument("--track-frames", type=int, default=60, help="frames of tracking at 5 cm/s")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--solver", default="gauss_newton", choices=["gauss_newton", "adam"],
                        help="how each frame set's block motion is estimated (CorrectionConfig.solver)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from launch._common import resolve_device
    from sim_workspace.views import SensorNoiseConfig, render_frames
    from twin.config import TwinConfig
    from twin.perception.correction import CorrectionConfig, VisualCorrector
    from twin.env import PushTEnv
    from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
    from twin.pusht import planar_pose_error
    from twin.rig import DEFAULT_RIG

    device = resolve_device(args.device)
    torch_device = "cuda" if device.startswith("cuda") else "cpu"
    rig = tuple(replace(c, width=args.width, height=args.height) for c in DEFAULT_RIG[: args.cameras])
    cfg = TwinConfig(num_worlds=1, device=device)
    twin, truth = PushTEnv(cfg), PushTEnv(cfg)
    twin_view = VisualCorrector(GaussianScene(cfg), CorrectionConfig(solver=args.solver), device=torch_device)
    truth_view = VisualCorrector(GaussianScene(cfg, GaussianSceneConfig(jitter=0.5, seed=7)), device=torch_device)
    for v in (twin_view, truth_view):
        v.set_cameras({c.serial: (c.intrinsics, c.T_world_camera) for c in rig})
    rng = np.random.default_rng(0)
    noise = SensorNoiseConfig()

    true_pose = np.array([0.54, 0.02, 0.3])
    parked = np.array([[0.40, 0.26]])
    truth_obs, _ = truth.reset(options={"block_pose": true_pose[None], "pusher_xy": parked})
    twin_obs, _ = twin.reset(options={"block_pose": (true_pose + [0.03, 0.0, np.deg2rad(15)])[None], "pusher_xy": parked})

    def frame_step(truth_action: np.ndarray) -> tuple[float, float, float]:
        nonlocal truth_obs, twin_obs
        frames = render_frames(truth_view, truth.body_poses()[0], truth.link_poses()[0], rig, noise, rng)
        result = twin_view.correct(frames, twin)
        twin_obs, *_ = twin.step(twin_obs.pusher_xy, block_springs=twin_view.springs([result]))
        truth_obs, *_ = truth.step(truth_action)
        pos, yaw = planar_pose_error(twin_obs.block_pose, truth_obs.block_pose[0])
        return pos[0], yaw[0], result.seconds

    converged_at, times = None, []
    for k in range(args.frames):
        pos, yaw, sec = frame_step(truth_obs.pusher_xy)
        times.append(sec)
        print(f"frame {k:3d}: pos err {pos * 1e3:6.2f} mm  yaw err {np.rad2deg(yaw):6.2f} deg  ({sec * 1e3:.0f} ms)", flush=True)
        if converged_at is None and pos <= 0.003 and yaw <= np.deg2rad(2.0):
            converged_at = k + 1
        elif pos > 0.003 or yaw > np.deg2rad(2.0):
            converged_at = None
    final_pos, final_yaw = pos, yaw

    # tracking: the truth's pusher comes from below the stem and pushes the block along +y at 5 cm/s
    start = truth_obs.block_pose[0, :2] + [0.0, -0.16]
    truth_obs, _ = truth.reset(options={"block_pose": truth_obs.block_pose, "pusher_xy": start[None]})
    track = []
    for k in range(args.track_frames):
        pos, yaw, sec = frame_step(truth_obs.pusher_xy + [0.0, 0.005])
        times.append(sec)
        track.append(pos)
        print(f"track {k:3d}: pos err {pos * 1e3:6.2f} mm  yaw err {np.rad2deg(yaw):6.2f} deg", flush=True)
    tracking = float(np.median(track[len(track) // 4:]))
    print(json.dumps({
        "frames_to_converge": converged_at,
        "final_pos_err_mm": round(final_pos * 1e3, 2),
        "final_yaw_err_deg": round(float(np.rad2deg(final_yaw)), 2),
        "tracking_pos_err_mm": round(tracking * 1e3, 2),
        "tracking_pos_err_mm_p95": round(float(np.percentile(track[len(track) // 4:], 95)) * 1e3, 2),
        "correction_hz": round(1.0 / float(np.median(times)), 1),
        "cameras": f"{args.cameras}x{args.width}x{args.height}",
        "device": device,
    }))


if __name__ == "__main__":
    main()
