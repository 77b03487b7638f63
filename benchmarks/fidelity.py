"""Fidelity of the corrected twin against the simulated workspace's hidden truth, correction on vs off.

    python benchmarks/fidelity.py                  # 3 episodes per mode, a 5 cm nudge in each
    python benchmarks/fidelity.py --episodes 12     # the figures quoted for issue goals (about 20 min on 2 cores)
    python benchmarks/fidelity.py --episodes 5 --nudge-step 50
    python benchmarks/fidelity.py --episodes 24 --seed 1000 --cameras 3 --only-on   # the harder workspace, scanned
    python benchmarks/fidelity.py --episodes 24 --seed 1000 --no-scan --only-on     # ... with the nominal palette
    python benchmarks/fidelity.py --episodes 16 --seed 1050 --only-on --nudge-step 100000 --oracle-perception
        # diagnostic: perfect block measurements, no nudge: what the live loop's mechanics cost on their own

For each mode the simulated workspace starts afresh with the same seed (the same domain gap), runs the
same seeded episodes with the scripted expert through the whole live stack (cameras -> correction ->
twin -> bridge -> follower), and at the same step of every episode 'a person' nudges the block by
``--nudge-m`` in the same seeded direction (the twin-only reference gets the same nudges). The
twin-vs-truth error is taken at the moment each twin state is meant for (the twin runs ahead of the
real scene by a control period plus the robot's lag). Last line:
``{"pos_err_mm_median_on", "pos_err_mm_p95_on", "yaw_err_deg_median_on", "pos_err_mm_median_off",
"improvement", "recovery_s", "joint_tracking_rms_rad", "success_live", "success_twin_only", "correction_hz"}``
plus the lag-compensation-free tracking figure, the fraction of nudges recovered within 0.5 s, 95 %
intervals of both success rates, and the device the twins ran on (CUDA when present; ``--set device=cpu``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

# Run as a script, this folder would shadow the project's packages (benchmarks/calibration.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nudge_directions(args) -> np.ndarray:  # noqa: ANN001
    """The direction [rad, world frame] of episode k's nudge: the same in every mode and the twin-only run."""
    return np.random.default_rng(args.seed).uniform(-np.pi, np.pi, args.episodes)


def run_mode(correct: bool, args, cfg, out: Path) -> dict:  # noqa: ANN001
    from launch.deploy import make_policy, start_world, stop_process
    from policies.evaluation import recovery_times
    from twin.live import LiveRunner
    from sim_workspace.clients import clients_for

    world = cfg.world.hands_off()
    cfg = replace(cfg, world=world, live=replace(cfg.live, episodes=args.episodes, seed=args.seed, correct=correct))
    proc, cfg = start_world(cfg, out)
    world, truth = clients_for(cfg.live.links.control_endpoint, cfg.live.links.truth_endpoint)
    runner = LiveRunner(cfg.live, make_policy(cfg), device=cfg.device, world=world, truth=truth)
    if args.oracle_perception:
        perfect_measurements(runner)
    nudges: list[int] = []  # record index at which each nudge was asked for
    truth_hist: list[dict] = []  # every truth message (the runner's own history keeps the last 500 s)

    def collect_truth() -> None:
        last = truth_hist[-1]["t_ns"] if truth_hist else -1
        new = []
        for h in reversed(runner.truth.history):  # newest first, down to what is already kept
            if h["t_ns"] <= last:
                break
            new.append(h)
        truth_hist.extend(reversed(new))

    def on_step(record, frames, obs, info):  # noqa: ANN001
        collect_truth()
        steps_in_episode = sum(1 for r in runner.records if r.episode == record.episode)
        if steps_in_episode == args.nudge_step:
            runner.control.nudge(args.nudge_m, float(nudge_directions(args)[record.episode]))
            nudges.append(len(runner.records) - 1)

    runner.on_step = on_step
    try:
        summary = runner.run()
        aligned = runner.aligned_errors()
        records = list(runner.records)
        collect_truth()
    finally:
        runner.close()
        stop_process(proc)
    idx, pos, yaw = aligned
    t_ref = runner._t0
    ends = []  # each nudge ends when the truth stops reporting it
    for n in nudges:
        t_cmd_ns = t_ref * 1e9 + records[n].t_s * 1e9
        stops = [h["t_ns"] for h, prev in zip(truth_hist[1:], truth_hist[:-1])
                 if prev.get("nudging") and not h.get("nudging") and h["t_ns"] > t_cmd_ns]
        ends.append(stops[0] / 1e9 - t_ref if stops else None)
    # recovery: from the nudge's end until the twin is back within 5 mm of the truth (for 0.3 s)
    recov = recovery_times(ends, np.array([records[i].t_s for i in idx]), pos)
    if args.dump and correct:
        np.savez(args.dump, t=[r.t_s for r in records], twin=[r.twin_block for r in records],
                 truth=[r.truth_block if r.truth_block is not None else np.full(3, np.nan) for r in records],
                 target=[r.correction_target for r in records], rate=[r.correction_rate for r in records],
                 loss=[r.correction_loss for r in records], episode=[r.episode for r in records],
                 pusher=[r.action for r in records], nudges=nudges, aligned_idx=idx, aligned_pos=pos,
                 shown_at_ns=[r.shown_at_ns for r in records], t0_ns=int(t_ref * 1e9),
                 coverage=[r.coverage for r in records], q_twin=[r.q_twin for r in records],
                 q_robot=[r.q_robot if r.q_robot is not None else np.full(7, np.nan) for r in records],
                 truth_t_ns=[h["t_ns"] for h in truth_hist], truth_pose=[h["block_pose"] for h in truth_hist],
                 truth_pusher=[h["pusher_xy"] for h in truth_hist])
    return {"summary": summary, "pos": pos, "yaw": yaw, "recovery": recov}


def perfect_measurements(runner) -> None:  # noqa: ANN001 - twin.live.LiveRunner
    """A diagnostic only (it reads the hidden truth): every frame set's correction measures the block exactly
    (the truth where it was when the frames were taken, carried on by the twin's pushes as the real
    measurement is), and no image says the block is lost; the rest of the loop (latency, waits, springs,
    the follower) is as it is. Success with it against success without splits the live shortfall into
    what perception costs and what the loop's mechanics do."""
    from twin.perception._solvers import frame_time_ns

    solve, latency_ns = runner.corrector.correct, int(runner.config.tracker.camera_latency_s * 1e9)

    def truth_at(times_ns: list[int]) -> np.ndarray | None:
        """The truth's block (x, y, yaw) at each of ``times_ns`` [len, 3], from its recent history (None if
        that does not reach back to the earliest)."""
        hist = [h for h in itertools.islice(reversed(runner.truth.history), 400) if "block_pose" in h][::-1]
        if not hist or hist[0]["t_ns"] > min(times_ns):
            return None
        t = np.array([h["t_ns"] for h in hist], dtype=np.float64)
        poses = np.array([h["block_pose"] for h in hist], dtype=np.float64)
        poses[:, 2] = np.unwrap(poses[:, 2])
        return np.stack([np.interp(times_ns, t, poses[:, i]) for i in range(3)], axis=-1)

    def exact(frames, env, **kw):  # noqa: ANN001, ANN202
        result = solve(frames, env, **kw)  # its time and its counters stay those of the real solve
        if not frames:
            return result
        runner.truth.poll()  # the truth up to now into its history
        t_frame = frame_time_ns(frames, list(frames)) - latency_ns
        poses = truth_at([t_frame - 50_000_000, t_frame])
        if poses is None:
            return result
        before, pose = poses
        carried = kw.get("carried")
        result.observed_pose = pose
        result.target_pose = pose + (np.zeros(3) if carried is None else np.asarray(carried, dtype=np.float64))
        result.target_rate = (pose - before) / 0.05
        result.delta_xy_m, result.delta_yaw_rad, result.loss, result.active, result.skipped = np.zeros(2), 0.0, 0.0, True, ""
        return result

    runner.corrector.correct = exact
    runner.tracker._block_lost = lambda frames: False  # noqa: SLF001 - the images never contradict the truth


def hand_set_localizer(cfg, seed: int):  # noqa: ANN001, ANN201 - DeployConfig -> LocalizerConfig
    """The localiser for the drawn block's colours (what an operator sets by hand without a scan; read from the
    simulated workspace's hidden look, so this baseline's localisation is better than a hand's)."""
    from sim_workspace.appearance import draw_appearance, look_generator
    from twin.perception.localize import block_color_localizer

    serials = tuple(c.serial for c in cfg.world.active_cameras)
    look = draw_appearance(cfg.world.appearance, serials, look_generator(seed))  # as the world draws it
    if look.block_colors is None:
        return cfg.live.localizer
    return block_color_localizer(look.block_colors, None, cfg.live.localizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nudge-m", type=float, default=0.05)
    parser.add_argument("--nudge-step", type=int, default=60, help="episode step at which the nudge comes")
    parser.add_argument("--only-on", action="store_true", help="skip the correction-off run (its figures are then null)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a deploy config value, e.g. --set live.correction.carry=twin")
    parser.add_argument("--oracle-perception", action="store_true",
                        help="diagnostic: the correction measures the block exactly (read from the hidden truth); "
                             "the rest of the live loop as it is")
    parser.add_argument("--dump", default="", help="write the correction-on run's step records to this .npz")
    parser.add_argument("--cameras", type=int, default=None, help="cameras of the simulated workspace (1-3)")
    parser.add_argument("--no-scan", action="store_true",
                        help="the twin keeps its nominal palette (no scan); the block's colour is set by hand, as it "
                             "was before scans: the localiser is given the drawn block's colours")
    args = parser.parse_args()
    from launch._common import quiet_libraries, resolve_device

    quiet_libraries()
    sys.setswitchinterval(0.001)
    from launch.config import ConfigError, load_config
    from launch.deploy import DeployConfig
    from policies.evaluation import nudge_blocks, run_episodes, success_interval

    try:  # a bad --set fails here, before the runs; the twin-only reference uses the same settings
        cfg = load_config(DeployConfig, None, args.set)
    except ConfigError as exc:
        parser.error(str(exc)[:500])
    if args.cameras is not None:
        cfg = replace(cfg, world=replace(cfg.world, camera_count=args.cameras))
    if args.no_scan:
        cfg = replace(cfg, live=replace(cfg.live, scan=False, localizer=hand_set_localizer(cfg, args.seed)))
    device = resolve_device(cfg.device)  # "auto": CUDA when present; --set device=cpu to compare
    cfg = replace(cfg, device=device, live=replace(cfg.live, twin=replace(cfg.live.twin, device=device)))
    with tempfile.TemporaryDirectory() as tmp:
        on = run_mode(True, args, cfg, Path(tmp) / "on")
        off = None if args.only_on else run_mode(False, args, cfg, Path(tmp) / "off")
    from policies.expert import PushTExpert

    seeds = list(range(args.seed, args.seed + args.episodes))
    twin_cfg = replace(cfg.live.twin, num_worlds=len(seeds))

    def nudge(env, step: int) -> None:  # noqa: ANN001 - the same disturbance as the live runs
        if step == args.nudge_step:
            nudge_blocks(env, args.nudge_m, nudge_directions(args))

    twin_only = run_episodes(twin_cfg, seeds, policy=PushTExpert(twin_cfg, cfg.expert), after_step=nudge)
    s_on = on["summary"]
    for name, m in (("on", on), ("off", off)) if off is not None else (("on", on),):
        print(f"correction {name}: position error median {np.median(m['pos']) * 1e3:.1f} mm, p95 "
              f"{np.percentile(m['pos'], 95) * 1e3:.1f} mm, yaw median {np.rad2deg(np.median(m['yaw'])):.1f} deg; "
              f"truth success {m['summary'].get('truth_success_rate')}; recovery {m['recovery']}")
    for ep, alone in zip(s_on["episodes"], twin_only["per_episode"]):
        print(f"  on, episode {ep['episode']}: twin {'success' if ep['success'] else 'failure'} ({ep['reason'] or 'ok'}), "
              f"steps {ep['steps']} (held ones included), twin coverage {ep['coverage']:.3f}, truth coverage {ep.get('truth_coverage', float('nan')):.3f}; "
              f"twin only: {'success' if alone['success'] else 'failure'} in {alone['steps']} steps")
    print(f"  on, counters: {s_on['counters']}")
    recovery = float(np.median(on["recovery"])) if on["recovery"] else float("nan")
    result = {
        "pos_err_mm_median_on": round(float(np.median(on["pos"]) * 1e3), 2),
        "pos_err_mm_p95_on": round(float(np.percentile(on["pos"], 95) * 1e3), 2),
        "yaw_err_deg_median_on": round(float(np.rad2deg(np.median(on["yaw"]))), 2),
        # an --only-on run has no correction-off figures
        "pos_err_mm_median_off": None if off is None else round(float(np.median(off["pos"]) * 1e3), 2),
        "improvement": None if off is None else round(float(np.median(off["pos"]) / max(np.median(on["pos"]), 1e-9)), 2),
        "recovery_s": round(recovery, 2) if np.isfinite(recovery) else None,
        "joint_tracking_rms_rad": round(float(s_on["follower_tracking_rms_rad_lag_compensated"]), 4),
        "joint_tracking_rms_rad_raw": round(float(s_on["follower_tracking_rms_rad"]), 4),
        "follower_lag_ms": round(float(s_on["follower_lag_ms"]), 1),
        "recovered_within_0_5_s": round(float(np.mean(np.asarray(on["recovery"]) <= 0.5)), 3) if on["recovery"] else None,
        "success_live": s_on.get("truth_success_rate"),
        "success_live_ci95": success_interval(s_on.get("truth_success_rate"), len(s_on["episodes"])),
        "success_twin_only": twin_only["success_rate"],
        "success_twin_only_ci95": success_interval(twin_only["success_rate"], len(seeds)),
        "correction_hz": round(float(s_on["correction_hz"]), 1),
        "episodes": args.episodes,
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "cameras": cfg.world.camera_count,
        "scan": not args.no_scan,
        "device": cfg.device,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
