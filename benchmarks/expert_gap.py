"""The scripted expert under the live stack's model error, without the live stack (fast, many seeds).

    python benchmarks/expert_gap.py --episodes 12
    python benchmarks/expert_gap.py --episodes 12 --set expert.keep_in_m=0.05

The expert plans in the nominal twin with the real block's dimensions, as in ``realsim deploy`` after
its first episode measured the block (``--nominal-block``: with the nominal T); the episodes run in
worlds whose physics has the simulated workspace's domain gap (drawn as ``realsim world`` draws it,
from ``--world-seed``).
What the live stack adds is imitated: the expert sees the block through an estimate with a per-episode
bias and per-step noise (``--bias-mm``, ``--noise-mm``, ``--noise-deg``), its pusher targets reach the
block one control step late (the follower's lag), and success is *declared* on the estimate (the
estimate's coverage, averaged over the last ``live.rules.success_hold_steps`` steps, over the live loop's
threshold) and *scored*
on the truth. Every episode gets a 5 cm nudge in a seeded direction at ``--nudge-step``.

Last line: ``{"success_truth", "success_declared", "false_success", "median_steps", "episodes", ...}``.
This is a proxy for choosing expert settings; ``benchmarks/fidelity.py`` measures the live stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--world-seed", type=int, default=0, help="seed of the domain-gap draw")
    parser.add_argument("--bias-mm", type=float, default=2.0, help="per-episode estimate bias (each axis) [mm]")
    parser.add_argument("--noise-mm", type=float, default=1.0, help="per-step estimate noise [mm]")
    parser.add_argument("--noise-deg", type=float, default=0.7, help="per-step yaw noise [deg]")
    parser.add_argument("--lag-steps", type=int, default=1, help="control steps before a target acts")
    parser.add_argument("--nudge-step", type=int, default=60)
    parser.add_argument("--nudge-m", type=float, default=0.05)
    parser.add_argument("--nominal-block", action="store_true",
                        help="the expert plans with the nominal T (default: with the real one, as the live loop "
                             "measures it in its first episode, see live.shape_fit_frames)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a deploy config value (expert.*, live.rules.success_margin, ...)")
    args = parser.parse_args()
    from launch._common import quiet_libraries

    quiet_libraries()
    from launch.config import load_config
    from launch.deploy import DeployConfig
    from policies.evaluation import nudge_blocks
    from policies.expert import PushTExpert
    from twin.env import PushTEnv
    from twin.live import SuccessWindow
    from twin.pusht import coverage
    from sim_workspace.world import WorldConfig, draw_truth

    cfg = load_config(DeployConfig, None, args.set)
    nominal = cfg.live.twin
    n = args.episodes
    truth_cfg, _ = draw_truth(replace(WorldConfig(), seed=args.world_seed, twin=nominal), np.random.default_rng(args.world_seed))
    truth_cfg = replace(truth_cfg, num_worlds=n, control_hz=nominal.control_hz, max_episode_steps=nominal.max_episode_steps,
                        physics=replace(truth_cfg.physics, substeps=nominal.physics.substeps))
    b = truth_cfg.block
    print(f"truth: friction {b.friction:.2f}, mass {b.mass_kg:.3f} kg, bar {b.bar_length_m * 1e3:.1f}x{b.bar_width_m * 1e3:.1f} mm, "
          f"stem {b.stem_width_m * 1e3:.1f}x{b.stem_length_m * 1e3:.1f} mm, pusher r {truth_cfg.physics.pusher_radius_m * 1e3:.1f} mm")
    env = PushTEnv(truth_cfg)
    planned = replace(nominal, num_worlds=n, block=nominal.block if args.nominal_block else
                      replace(nominal.block, **{k: getattr(b, k) for k in ("bar_length_m", "bar_width_m", "stem_width_m", "stem_length_m")}))
    expert = PushTExpert(planned, cfg.expert)
    rng = np.random.default_rng(1000 + args.seed)
    seeds = list(range(args.seed, args.seed + n))
    obs, _ = env.reset(seed=seeds)
    expert.reset()
    bias = np.c_[rng.normal(0, args.bias_mm * 1e-3, (n, 2)), np.zeros(n)]
    nudge_dir = rng.uniform(-np.pi, np.pi, n)
    pending = [obs.pusher_xy.copy() for _ in range(args.lag_steps)]
    active = np.ones(n, dtype=bool)
    declared = np.zeros(n, dtype=bool)
    truth_cov = np.zeros(n)
    steps = np.full(n, nominal.max_episode_steps)
    goal = env.goal_pose
    threshold = nominal.goal.success_coverage + cfg.live.rules.success_margin
    windows = [SuccessWindow(threshold, cfg.live.rules.success_hold_steps) for _ in range(n)]  # the live loop's rule
    for step in range(1, nominal.max_episode_steps + 1):
        seen = obs.block_pose + bias + np.c_[rng.normal(0, args.noise_mm * 1e-3, (n, 2)),
                                             rng.normal(0, np.deg2rad(args.noise_deg), n)]
        est = replace(obs, block_pose=seen)
        act = expert.act(est, active)
        pending.append(np.where(active[:, None], act, obs.pusher_xy))
        obs, _, _, _, info = env.step(pending.pop(0))
        if step == args.nudge_step:
            nudge_blocks(env, args.nudge_m, nudge_dir)
            obs = env.observe()
        est_cov = coverage(nominal.block, obs.block_pose + bias, goal)
        done = active & np.array([w.update(float(c)) for w, c in zip(windows, est_cov)])
        declared |= done
        truth_cov[active] = coverage(nominal.block, obs.block_pose[active], goal)
        steps[done] = step
        active &= ~done
        if not active.any():
            break
    success = truth_cov >= nominal.goal.success_coverage
    for i, s in enumerate(seeds):
        x, y, yaw = obs.block_pose[i]
        print(f"seed {s:3d} declared={declared[i]!s:5} truth_coverage={truth_cov[i]:.3f} steps={steps[i]} "
              f"final block ({x:.3f}, {y:.3f}, {np.rad2deg(yaw):.0f} deg)")
    print(json.dumps({"success_truth": round(float(success.mean()), 3), "success_declared": round(float(declared.mean()), 3),
                      "false_success": int(np.sum(declared & ~success)), "median_steps": float(np.median(steps)),
                      "mean_truth_coverage": round(float(truth_cov.mean()), 4), "episodes": n,
                      "world_seed": args.world_seed, "decisions": expert.decisions}))


if __name__ == "__main__":
    main()
