"""`realsim deploy`: live policy deployment. The twin, corrected from the cameras, runs a policy on the
simulated robot while the real robot follows its joints.

Usage::

    realsim deploy                                  # starts the simulated workspace, 3 expert episodes
    realsim deploy --episodes 5 --out runs/deploy-test
    realsim deploy --policy runs/train/checkpoints/last/pretrained_model   # a trained policy
    realsim deploy --policy lerobot:outputs/train/checkpoints/last/pretrained_model   # trained by lerobot-train
    realsim deploy --set live.correct=false         # open-loop twin (no visual forces), for comparison
    realsim deploy --scene runs/scan/scene          # the scene scanned by `realsim scan` (default: scan at start)
    realsim deploy --save-state runs/states         # twin states for `realsim evaluate --from-state` (each
                                                    # episode's start; `kill -USR1 <pid>` saves one more)
    realsim deploy --config setups/lab.yaml         # hardware: start_world=false, live.links.robot_address,
                                                    # live.links.camera_endpoint, live.links.calibration_path, and
                                                    # live.links.control_endpoint="" (the operator resets)

The run folder (``runs/<date>-<time>-deploy`` or ``--out``) receives the resolved config, metrics.json,
run.rrd (rerun) and errors.png. Exit status 0 when every episode ran (successful or not), 1 when the
robot or the cameras went away, 2 on a bad config.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from policies.expert import LIVE_EXPERT, ExpertConfig
from twin.live import LiveConfig
from sim_workspace.clients import clients_for
from sim_workspace.world import WorldConfig

from ._common import add_config_arguments, free_tcp_endpoints, make_run_dir, quiet_libraries, resolve_device

log = logging.getLogger("realsim.deploy")


@dataclass(frozen=True)
class DeployConfig:
    """`realsim deploy`."""

    live: LiveConfig = field(default_factory=LiveConfig)
    #: Start the simulated workspace as a subprocess (its endpoints then replace live's).
    start_world: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)
    #: The policy, by name (``policies.registry``): "expert" (the scripted expert) or "learned"; or "lerobot"
    #: (a ``lerobot-train`` checkpoint run in LeRobot's own Python, `policies.lerobot_bridge`).
    policy: str = "expert"
    #: The learned policy's checkpoint directory (``--policy DIR`` sets it and ``policy=learned``;
    #: ``--policy lerobot:DIR`` sets it and ``policy=lerobot``).
    policy_path: str = ""
    #: The expert's planning, as the live loop runs it (``policies.expert.LIVE_EXPERT``).
    expert: ExpertConfig = LIVE_EXPERT
    #: Warp/torch device of the twin: "auto" = CUDA when present.
    device: str = "auto"
    record_rrd: bool = True
    #: Seconds to wait for a started simulated workspace to answer.
    world_start_timeout_s: float = 120.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="live deployment: corrected twin + policy + robot bridge",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=None, help="number of episodes (default 3)")
    p.add_argument("--policy", default=None, metavar="DIR",
                   help="a trained checkpoint (its pretrained_model folder) instead of the scripted expert; "
                        "lerobot:DIR for one trained by lerobot-train")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-deploy)")
    p.add_argument("--scene", default=None, metavar="DIR",
                   help="a scene file from `realsim scan` (default: scan at the first episode)")
    p.add_argument("--save-state", default=None, metavar="DIR",
                   help="save the twin's state at every episode's start and on `kill -USR1 <pid>` into DIR "
                        "(for `realsim evaluate --from-state`)")
    add_config_arguments(p)
    p.set_defaults(func=run)


def check_scene(live: LiveConfig) -> None:
    """Read ``live.scene_path`` (when set) as the live twin will: a ``SceneFileError`` says what is wrong."""
    if live.scene_path:
        from twin.gaussian_scene import GaussianScene
        from twin.scene_file import load_scene

        load_scene(live.scene_path, required_bodies=GaussianScene(live.twin, live.gaussians).body_names)


def start_world(cfg: DeployConfig, out: Path) -> tuple[subprocess.Popen, DeployConfig]:
    """Start ``realsim world`` on free loopback ports; returns the process and the config pointing at it."""
    from launch.config import save_config
    from sim_workspace.clients import WorldControl

    robot, cams, truth, control = free_tcp_endpoints(4)
    world_cfg = replace(cfg.world, twin=cfg.live.twin, robot_address=robot, camera_endpoint=cams,
                        truth_endpoint=truth, control_endpoint=control, seed=cfg.live.seed)
    save_config(world_cfg, out / "world.yaml")
    calibration = out / "calibration.yaml"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out / "world.log", "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "world", "--config", str(out / "world.yaml"),
                                 "--calibration", str(calibration), "--out", str(out / "world")],
                                stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    (out / "world.pid").write_text(f"{proc.pid}\n")
    ctl = WorldControl(control, timeout_s=1.0)
    deadline = time.monotonic() + cfg.world_start_timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the simulated workspace exited with {proc.returncode}; see {out / 'world.log'}")
            try:
                ctl.ping()
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the simulated workspace did not start within {cfg.world_start_timeout_s} s")
    finally:
        ctl.close()
    links = replace(cfg.live.links, robot_address=robot, camera_endpoint=cams, truth_endpoint=truth,
                    control_endpoint=control, calibration_path=str(calibration))
    live = replace(cfg.live, links=links)
    return proc, replace(cfg, live=live, world=world_cfg)


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def make_policy(cfg: DeployConfig):
    """The job's policy (``cfg.policy``, by name in ``policies.registry``; "lerobot": a LeRobot checkpoint,
    whose environment or checkpoint, missing or broken, is a ``ValueError``)."""
    from policies.registry import make_policy as build

    if cfg.policy == "lerobot":
        from policies.lerobot_bridge import LeRobotPolicy, LeRobotPolicyError

        try:
            return LeRobotPolicy(cfg.policy_path, cfg.live.twin, device=cfg.live.twin.device, seed=cfg.live.seed)
        except LeRobotPolicyError as exc:
            raise ValueError(f"--policy lerobot:{cfg.policy_path}: {exc}") from exc
    return build(cfg.policy, cfg.live.twin, expert=cfg.expert, checkpoint=cfg.policy_path, device=cfg.live.twin.device,
                 seed=cfg.live.seed)


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config
    from twin.live import LiveLinkError, LiveRunner
    from twin.live.recorder import LiveRecorder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s deploy %(levelname)s %(message)s")
    quiet_libraries()
    sys.setswitchinterval(0.001)  # the joint streamer thread must not wait long for the interpreter
    overrides = list(args.overrides) + ([f"live.episodes={args.episodes}"] if args.episodes is not None else [])
    if args.policy is not None and args.policy.startswith("lerobot:"):
        overrides += ["policy=lerobot", f"policy_path={args.policy[len('lerobot:'):]}"]
    elif args.policy is not None:
        overrides += ["policy=learned", f"policy_path={args.policy}"]
    if args.scene is not None:
        overrides.append(f"live.scene_path={args.scene}")
    if args.save_state is not None:
        overrides.append(f"live.save_state_dir={args.save_state}")
    cfg = load_config(DeployConfig, args.config, overrides)
    device = resolve_device(cfg.device)
    cfg = replace(cfg, live=replace(cfg.live, twin=replace(cfg.live.twin, device=device, num_worlds=1)))
    out = make_run_dir("deploy", args.out)
    from policies.learned.checkpoint import CheckpointError

    from twin.scene_file import SceneFileError

    try:  # a bad checkpoint, policy name or scene file is refused before anything starts or moves
        policy = make_policy(cfg)
        check_scene(cfg.live)
    except (CheckpointError, SceneFileError, ValueError) as exc:
        print(f"realsim deploy: {exc}", file=sys.stderr)
        return 2
    world = None
    runner = None
    code = 0
    try:
        if cfg.start_world:  # the world changes the links only: the policy's twin config stands
            log.info("starting the simulated workspace (log: %s)", out / "world.log")
            world, cfg = start_world(cfg, out)
        save_config(cfg, out / "config.yaml")
        control, truth = clients_for(cfg.live.links.control_endpoint, cfg.live.links.truth_endpoint)
        runner = LiveRunner(cfg.live, policy, device=device, world=control, truth=truth)
        recorder = LiveRecorder(out, rrd=cfg.record_rrd, corrector=runner.corrector, twin=runner.twin)
        status = _StatusLine()

        def on_step(record, frames, obs, info):  # noqa: ANN001
            recorder.on_step(record, frames, obs, info)
            status.update(record)

        runner.on_step = on_step
        try:
            summary = runner.run()
        except LiveLinkError as exc:
            log.error("stopping: %s", exc)
            summary = runner.summary()
            summary["aborted"] = str(exc)
            code = 1
        status.close()
        recorder.finish(summary, runner.records)
        _print_summary(summary, out)
    except KeyboardInterrupt:
        log.warning("interrupted: the robot holds; partial results are in %s", out)
        if runner is not None:
            LiveRecorder(out, rrd=False).finish(runner.summary() | {"aborted": "interrupted"}, runner.records)
        code = 130
    finally:
        if runner is not None:
            runner.close()
        stop_process(world)
    return code


class _StatusLine:
    """One live console line: episode, step, coverage, twin-vs-truth error, correction."""

    def __init__(self) -> None:
        self.n = 0
        self.tty = sys.stderr.isatty()

    def update(self, r) -> None:  # noqa: ANN001
        self.n += 1
        if not self.tty and self.n % 20:
            return
        err = "" if r.truth_block is None else f"  twin-truth {1e3 * float(((r.twin_block[:2] - r.truth_block[:2]) ** 2).sum() ** 0.5):5.1f} mm"
        line = (f"episode {r.episode}  t {r.t_s:6.1f} s  coverage {r.coverage:4.2f}{err}  "
                f"correction {'on ' if r.correction_active else 'off'}{'  STALLED' if r.stalled else ''}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _print_summary(summary: dict, out: Path) -> None:
    for ep in summary["episodes"]:
        truth = f"  truth coverage {ep['truth_coverage']:.2f}" if "truth_coverage" in ep else ""
        print(f"episode {ep['episode']} (seed {ep['seed']}): {'success' if ep['success'] else 'failure'}"
              f"{' (' + ep['reason'] + ')' if ep['reason'] else ''}  steps {ep['steps']}  twin coverage {ep['coverage']:.2f}{truth}")
    for key, what in (("twin_vs_truth", "same instant"), ("twin_vs_truth_aligned", "time-aligned")):
        tv = summary.get(key)
        if tv:
            print(f"twin vs truth ({what}): position {tv['pos_err_mm_median']:.1f} mm median "
                  f"({tv['pos_err_mm_p95']:.1f} p95), yaw {tv['yaw_err_deg_median']:.1f} deg median")
    print(f"success rate {summary['success_rate']:.2f}; correction {summary['correction_hz']:.1f} Hz; "
          f"follower tracking RMS {summary['follower_tracking_rms_rad']:.4f} rad "
          f"({summary['follower_tracking_rms_rad_lag_compensated']:.4f} rad behind a {summary['follower_lag_ms']:.0f} ms lag)")
    if "aborted" in summary:
        print(f"aborted: {summary['aborted']}")
    print(f"run folder: {out}")
