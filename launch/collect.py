"""`realsim collect`: teleoperated demonstrations through the twin, written as a LeRobot-v3 dataset.

The live loop of `realsim deploy` with a teleoperator instead of a policy: the operator drives the
simulated robot (the real one follows), the corrected twin supplies the observations, and each
finished episode is committed to the dataset (a crash loses at most the episode in progress).

Usage::

    realsim collect                                   # simulated workspace + virtual operator, 2 episodes
    realsim collect --episodes 20 --dataset data/pusht-demos
    realsim collect --dataset data/pusht-demos --resume --episodes 30   # continue to 30 episodes
    realsim collect --teleop keyboard --dataset data/kb   # arrows/WASD move, +/- speed, n next,
                                                          # r re-record, q stop (needs a terminal)
    realsim collect --teleop browser                  # open http://127.0.0.1:8765/ and drag on the top view
                                                      # (--set browser.port=... ; closing the page stops)
    realsim collect --teleop gamepad                  # left stick moves, A next, B re-record, Back stop
    realsim collect --teleop spacemouse               # puck moves, left button next, right re-record
    realsim collect --set episode_time_s=20 --set record_raw_frames=false
    realsim collect --policy runs/train/checkpoints/last/pretrained_model --teleop keyboard
                                                      # a trained policy drives; moving the keyboard's
                                                      # target takes over, letting go hands back
    realsim collect --twin-only --episodes 200 --dataset data/pusht-twin   # the scripted expert in
                                                      # batched twins alone: no live stack, fast
    realsim collect --config setups/lab.yaml          # hardware: start_world=false, live.links.robot_address,
                                                      # live.links.camera_endpoint, live.links.calibration_path,
                                                      # live.links.control_endpoint="" (the operator resets)

With ``--policy DIR`` a trained checkpoint drives the twin and the operator takes over while they move
their teleoperator (``policies.teleop.TakeoverPolicy``); each frame's ``control.by_operator`` says who
chose its action. With the virtual operator (the default) the policy drives alone.

Episode control: the teleoperator's keys (next / re-record / stop), the episode time limit
(``episode_time_s``) and success (the twin's coverage >= the goal's) end an episode; between episodes
the robot returns to its start pose and the scene is reset (the simulated workspace resets itself; on
hardware the operator is asked). The run folder (``--out``, default ``runs/<date>-<time>-collect``) holds
the resolved config, the simulated workspace's log and ``summary.json``; the dataset goes to
``--dataset`` (default ``<run folder>/dataset``). Exit status 0 when the episodes were collected or the
operator stopped, 1 when the robot or the cameras went away, 2 on a bad config or an unwritable dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from policies.expert import LIVE_EXPERT, ExpertConfig
from policies.teleop import BrowserConfig, GamepadConfig, KeyboardConfig, SpaceMouseConfig
from twin.live import LiveConfig
from twin.rig import VirtualCameraConfig
from sim_workspace.clients import clients_for
from sim_workspace.world import WorldConfig

from ._common import add_config_arguments, make_run_dir, quiet_libraries, resolve_device

log = logging.getLogger("realsim.collect")

DEFAULT_TASK = "Push the T-shaped block onto the T-shaped target."


@dataclass(frozen=True)
class CollectConfig:
    """`realsim collect`."""

    live: LiveConfig = field(default_factory=lambda: LiveConfig(episodes=2))
    #: Start the simulated workspace as a subprocess (its endpoints then replace live's).
    start_world: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)
    #: The teleoperator: "virtual" (the scripted expert, headless), "keyboard" (terminal), "browser"
    #: (a page served on loopback), "gamepad" (SDL) or "spacemouse" (HID).
    teleop: str = "virtual"
    #: A trained policy's checkpoint directory (``--policy DIR``): it drives, the operator can take over.
    policy_path: str = ""
    #: The virtual teleoperator's expert, as the live loop runs it (``policies.expert.LIVE_EXPERT``).
    expert: ExpertConfig = LIVE_EXPERT
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    browser: BrowserConfig = field(default_factory=lambda: BrowserConfig(wait_for_page_s=300.0))
    task: str = DEFAULT_TASK
    #: Episode time limit [s] (sets the twin's max_episode_steps).
    episode_time_s: float = 30.0
    #: Twin renders stored as ``observation.images.<serial>``.
    cameras: tuple[VirtualCameraConfig, ...] = (
        VirtualCameraConfig("top", eye_m=(0.70, 0.0, 0.85), target_m=(0.54, 0.0, 0.0), width=96, height=96, hfov_deg=45.0),)
    #: Also store the cameras' raw frames (``raw/<serial>/``, read with ``DatasetReader.raw_video``).
    record_raw_frames: bool = True
    #: Refuse to start (and to save an episode) with less free disk space [MB].
    min_free_mb: float = 200.0
    #: Warp/torch device of the twin: "auto" = CUDA when present.
    device: str = "auto"
    world_start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.episode_time_s > 0:
            raise ValueError("episode_time_s must be > 0")
        if not self.task:
            raise ValueError("task must not be empty")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="teleoperated demo collection through the twin into a dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=None, help="episodes the dataset should hold at the end (default 2)")
    p.add_argument("--dataset", type=Path, default=None, help="dataset folder (default <run folder>/dataset)")
    p.add_argument("--resume", action="store_true", help="continue the dataset at --dataset")
    p.add_argument("--teleop", default=None, help="teleoperator: virtual (default), keyboard, browser, gamepad or spacemouse")
    p.add_argument("--policy", default=None, metavar="DIR",
                   help="a trained checkpoint (pretrained_model folder) drives; the teleoperator takes over while moved")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date>-<time>-collect)")
    p.add_argument("--scene", default=None, metavar="DIR",
                   help="a scene file from `realsim scan` (default: scan at the first episode)")
    p.add_argument("--twin-only", action="store_true",
                   help="the scripted expert in batched twin worlds (seeds live.seed + k), no live stack; the "
                        "same dataset format without camera images (add them with `realsim dataset render`)")
    add_config_arguments(p)
    p.set_defaults(func=run)


class _Stop(Exception):
    """The operator asked to stop, re-record or end the episode (raised out of the live loop's step)."""

    def __init__(self, event) -> None:  # noqa: ANN001
        super().__init__(event.value)
        self.event = event


def run(args: argparse.Namespace) -> int:
    from launch.config import load_config, save_config, to_dict
    from policies.dataset import DatasetError, check_writable
    from policies.learned.checkpoint import CheckpointError
    from policies.teleop import TeleopError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s collect %(levelname)s %(message)s")
    quiet_libraries()
    sys.setswitchinterval(0.001)  # the joint streamer thread must not wait long for the interpreter
    overrides = list(args.overrides)
    if args.episodes is not None:
        overrides.append(f"live.episodes={args.episodes}")
    if args.teleop is not None:
        overrides.append(f"teleop={args.teleop}")
    if args.policy is not None:
        overrides.append(f"policy_path={args.policy}")
    if args.scene is not None:
        overrides.append(f"live.scene_path={args.scene}")
    cfg = load_config(CollectConfig, args.config, overrides)
    device = resolve_device(cfg.device)
    steps = max(1, int(round(cfg.episode_time_s * cfg.live.twin.control_hz)))
    cfg = replace(cfg, live=replace(cfg.live, twin=replace(cfg.live.twin, device=device, num_worlds=1, max_episode_steps=steps)))
    out = make_run_dir("collect", args.out)
    root = args.dataset if args.dataset is not None else out / "dataset"
    # before anything moves: the dataset must be writable, with room, and new unless resuming
    try:
        from launch.deploy import check_scene
        from twin.scene_file import SceneFileError

        try:
            check_scene(cfg.live)
        except SceneFileError as exc:
            raise DatasetError(str(exc)) from exc
        check_writable(root, cfg.min_free_mb)
        if (root / "meta" / "info.json").exists() and not args.resume:
            raise DatasetError(f"{root} already holds a dataset: pass --resume to continue it, or choose another --dataset")
        if args.resume and not (root / "meta" / "info.json").exists():
            raise DatasetError(f"--resume: {root} holds no dataset to continue")
    except DatasetError as exc:
        print(f"realsim collect: {exc}", file=sys.stderr)
        return 2
    try:
        twin_meta = {"fps": cfg.live.twin.control_hz, "twin": to_dict(cfg.live.twin), "gaussians": to_dict(cfg.live.gaussians),
                     "cameras": [to_dict(c) for c in cfg.cameras], "scene_path": cfg.live.scene_path}
        twin_meta["twin"]["device"] = "cpu"  # the device a dataset was recorded on does not describe the scene
        if args.twin_only:
            if cfg.policy_path:
                raise DatasetError("--twin-only records the scripted expert; --policy runs through the live stack")
            return _collect_twin_only(cfg, args, out, root, twin_meta)
        return _collect(cfg, args, out, root, device, twin_meta)
    except (DatasetError, TeleopError, CheckpointError) as exc:
        print(f"realsim collect: {exc}", file=sys.stderr)
        return 2
    finally:
        save_config(cfg, out / "config.yaml")


def _collect_twin_only(cfg: CollectConfig, args: argparse.Namespace, out: Path, root: Path, twin_meta: dict) -> int:
    from policies.dataset import DatasetReader
    from policies.dataset._twin_demos import record_twin_demos
    from policies.expert import PushTExpert

    have = DatasetReader(root).num_episodes if args.resume else 0
    first = cfg.live.seed + have
    seeds = list(range(first, cfg.live.seed + cfg.live.episodes))
    if not seeds:
        print(f"{root} already holds {have} episodes (asked for {cfg.live.episodes})")
        return 0
    twin_meta = dict(twin_meta, cameras=[])
    t0 = time.monotonic()
    result = record_twin_demos(root, cfg.live.twin, seeds, twin_meta=twin_meta, resume=args.resume, task=cfg.task,
                               policy_factory=lambda twin: PushTExpert(twin, cfg.expert))
    result["wall_s"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    print(f"collected {result['episodes_written']} episode(s) ({result['successes']} successful) in the twin "
          f"into {root} in {result['wall_s']:.0f} s; seeds {seeds[0]}-{seeds[-1]}")
    return 0


def _policy(cfg: CollectConfig, teleop, device: str):  # noqa: ANN001, ANN202 - (Policy, by_operator or None)
    """The live loop's policy: the teleoperator, or with ``policy_path`` a trained policy the operator can
    take over (alone with the virtual operator, which never gives input), and who chose each action."""
    from policies.registry import make_policy
    from policies.teleop import TakeoverPolicy

    if not cfg.policy_path:
        return make_policy("teleop", cfg.live.twin, teleop=teleop), None
    learned = make_policy("learned", cfg.live.twin, checkpoint=cfg.policy_path, device=device, seed=cfg.live.seed)
    policy = TakeoverPolicy(learned, None if cfg.teleop == "virtual" else teleop)
    return policy, lambda: policy.by_operator


def _collect(cfg: CollectConfig, args: argparse.Namespace, out: Path, root: Path, device: str, twin_meta: dict) -> int:
    from tqdm import tqdm

    from launch.deploy import start_world, stop_process
    from policies.dataset import DatasetSpec, DatasetWriter, EpisodeRecorder, TwinRenderer, pusht_features
    from policies.teleop import EpisodeEvent, make_teleop
    from twin.cameras import CameraError
    from twin.live import LiveLinkError, LiveRunner

    world = runner = teleop = None
    code = 0
    summary: dict = {"episodes": []}
    try:
        teleop = make_teleop(cfg.teleop, cfg.live.twin, cfg.expert, cfg.keyboard, cfg.gamepad, cfg.spacemouse, cfg.browser)
        if cfg.teleop == "browser":
            log.info("teleop page: http://%s:%d/ (waiting for it to open)", cfg.browser.host, cfg.browser.port)
        teleop.connect()  # an absent device fails here, before anything starts or moves
        policy, by_operator = _policy(cfg, teleop, device)  # so does a bad checkpoint
        if cfg.start_world:
            log.info("starting the simulated workspace (log: %s)", out / "world.log")
            world, cfg = start_world(cfg, out)
        control, truth = clients_for(cfg.live.links.control_endpoint, cfg.live.links.truth_endpoint)
        runner = LiveRunner(cfg.live, policy, device=device, world=control, truth=truth)
        raw = {s: (runner.calibration.camera(s).intrinsics.height, runner.calibration.camera(s).intrinsics.width)
               for s in runner.calibration.serials} if cfg.record_raw_frames else {}
        spec = DatasetSpec(fps=cfg.live.twin.control_hz, features=pusht_features(
            {c.serial: (c.height, c.width) for c in cfg.cameras}), raw_cameras=raw)
        writer = DatasetWriter(root, spec, twin_meta=twin_meta, resume=args.resume, min_free_mb=cfg.min_free_mb,
                               # steps spent waiting for the robot do not count towards the time limit
                               max_episode_frames=20 * cfg.live.twin.max_episode_steps + 1000)
        renderer = TwinRenderer(cfg.live.twin, cfg.live.gaussians, cfg.cameras, device=device,
                                scene_path=cfg.live.scene_path) if cfg.cameras else None
        recorder = EpisodeRecorder(writer, runner.twin, renderer, cfg.task, tuple(raw), by_operator=by_operator)
        policy.on_act = recorder.on_act
        target = cfg.live.episodes
        width = shutil.get_terminal_size((0, 0)).columns
        bar = tqdm(total=target, initial=writer.num_episodes, unit="episode", desc="collect", file=sys.stderr,
                   dynamic_ncols=width >= 40, ncols=None if width >= 40 else 120, mininterval=0.5)

        last_refresh = [0.0]
        last = {"success": False, "coverage": 0.0}

        def on_step(record, frames, obs, info) -> None:  # noqa: ANN001
            recorder.on_step(record, frames, obs, info)
            last.update(success=bool(info["is_success"][0]), coverage=record.coverage)
            if hasattr(teleop, "update_view"):
                teleop.update_view(obs, writer.num_episodes, recorder.frames, record.coverage)
            events = teleop.events()
            now = time.monotonic()
            if now - last_refresh[0] > 0.5:  # the live status line, at most twice a second
                last_refresh[0] = now
                bar.set_postfix_str(f"ep {writer.num_episodes} step {recorder.frames} coverage {record.coverage:.2f}"
                                    f"{' STALLED' if record.stalled else ''}")
            if events:
                raise _Stop(events[-1])

        runner.on_step = on_step
        runner.start()
        attempt = 0  # seeds advance with every attempt; a re-record repeats the seed
        camera_failures = 0
        t_loop = 0.0
        t_collect = time.monotonic()
        while writer.num_episodes < target:
            k = writer.num_episodes + attempt
            t0 = time.monotonic()
            try:
                result = runner.run_episode(k)
                event = None
                camera_failures = 0
            except CameraError as exc:  # a transient camera fault costs the episode, not the session
                camera_failures += 1
                log.error("episode %d dropped: camera fault: %s", k, exc)
                recorder.discard()
                if camera_failures >= 3:
                    raise LiveLinkError(f"the cameras failed {camera_failures} episodes in a row: {exc}") from exc
                continue
            except _Stop as stop:
                event = stop.event
                result = {"episode": k, "seed": cfg.live.seed + k, "success": last["success"],
                          "reason": f"operator: {event.value}", "steps": recorder.frames,
                          "time_s": round(time.monotonic() - t0, 2), "coverage": last["coverage"]}
            t_loop += time.monotonic() - t0
            if event is EpisodeEvent.RERECORD:
                log.info("re-recording episode %d", writer.num_episodes)
                recorder.discard()
                continue
            if event is EpisodeEvent.STOP:
                log.info("stopped by the operator; the episode in progress is dropped")
                recorder.discard()
                break
            if recorder.frames == 0:  # e.g. the block was not localised: nothing to keep
                log.warning("episode %d recorded no frames (%s): trying the next seed", k, result.get("reason", ""))
                attempt += 1
                recorder.discard()
                continue
            ep = recorder.save(success=bool(result.get("success")))
            result = dict(result, dataset_episode=ep)
            if by_operator is not None:  # a policy drove: how much the operator took over
                result.update(takeovers=policy.takeovers, operator_steps=policy.operator_steps)
            summary["episodes"].append(result)
            bar.update(1)
            bar.set_postfix_str(f"saved episode {ep} ({'success' if result.get('success') else result.get('reason', '')})")
        bar.close()
        summary.update(runner.summary() | {"episodes": summary["episodes"]}, dataset=str(root),
                       dataset_episodes=writer.num_episodes, dataset_frames=writer.num_frames,
                       loop_seconds=t_loop, collect_wall_seconds=time.monotonic() - t_collect,
                       recorder=recorder.stats())
    except LiveLinkError as exc:
        log.error("stopping: %s (the committed episodes are kept)", exc)
        summary["aborted"] = str(exc)
        code = 1
    except KeyboardInterrupt:
        log.warning("interrupted: the episode in progress is dropped; the dataset at %s keeps the others", root)
        summary["aborted"] = "interrupted"
        code = 130
    finally:
        if teleop is not None and teleop.is_connected:
            teleop.disconnect()
        if runner is not None:
            runner.close()
        stop_process(world)
        from twin.live.recorder import to_plain

        (out / "summary.json").write_text(json.dumps(to_plain(summary), indent=2))
    n_ok = sum(bool(e.get("success")) for e in summary["episodes"])
    print(f"collected {len(summary['episodes'])} episode(s) ({n_ok} successful) into {root}; "
          f"dataset holds {summary.get('dataset_episodes', '?')} episodes, {summary.get('dataset_frames', '?')} frames")
    return code
