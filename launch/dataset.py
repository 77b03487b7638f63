"""`realsim dataset`: inspect, validate, re-render and replay datasets written by `realsim collect`.

Usage::

    realsim dataset info data/pusht-demos             # totals, features, tasks, success rate
    realsim dataset validate data/pusht-demos         # LeRobot v3 layout checked field by field
    realsim dataset render data/pusht-demos --camera side --eye 0.54,0.6,0.5 --target 0.54,0,0 --size 128x96
                                                      # adds observation.images.side from the stored
                                                      # twin state of every frame
    realsim dataset replay data/pusht-demos --episode 3   # drives a twin through the recorded actions
                                                          # and reports how far its block ends from
                                                          # the recorded one

Exit status 0 on success, 1 when ``validate`` finds problems, 2 on a missing or broken dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="inspect, validate, re-render and replay collected datasets",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = ds.add_parser("info", help="totals, features and tasks")
    a.add_argument("root", type=Path)
    a.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    a = ds.add_parser("validate", help="check the LeRobot v3 layout field by field")
    a.add_argument("root", type=Path)
    a.add_argument("--no-decode", action="store_true", help="do not decode videos (faster)")
    a = ds.add_parser("render", help="add an image feature rendered from the stored twin state")
    a.add_argument("root", type=Path)
    a.add_argument("--camera", required=True, help="name: the feature is observation.images.<name>")
    a.add_argument("--eye", required=True, help="camera position x,y,z [m], world frame")
    a.add_argument("--target", default="0.54,0,0", help="point looked at x,y,z [m], world frame")
    a.add_argument("--size", default="96x96", help="WIDTHxHEIGHT [px], even numbers")
    a.add_argument("--hfov", type=float, default=60.0, help="horizontal field of view [deg]")
    a = ds.add_parser("replay", help="drive a twin through an episode's recorded actions")
    a.add_argument("root", type=Path)
    a.add_argument("--episode", type=int, default=0)
    p.set_defaults(func=run)


def _vec3(text: str) -> tuple[float, float, float]:
    parts = [float(x) for x in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"expected x,y,z, got {text!r}")
    return parts[0], parts[1], parts[2]


def run(args: argparse.Namespace) -> int:
    from policies.dataset import DatasetError, DatasetReader, validate_dataset

    try:
        if args.action == "validate":
            problems = validate_dataset(args.root, decode_videos=not args.no_decode)
            for p in problems:
                print(f"problem: {p}")
            print(f"{args.root}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
            return 1 if problems else 0
        reader = DatasetReader(args.root)
        if args.action == "info":
            return _info(reader, args.json)
        if args.action == "render":
            return _render(reader, args)
        if args.action == "replay":
            return _replay(reader, args.episode)
    except (DatasetError, ValueError, IndexError, KeyError) as exc:
        print(f"realsim dataset {args.action}: {exc}", file=sys.stderr)
        return 2
    return 2


def _info(reader, as_json: bool) -> int:  # noqa: ANN001
    success = [reader.episode_success(i) for i in range(reader.num_episodes)]
    info = {"root": str(reader.root), "codebase_version": reader.info["codebase_version"],
            "episodes": reader.num_episodes, "frames": reader.num_frames, "fps": reader.fps,
            "tasks": sorted(reader.tasks), "success_rate": float(np.mean(success)) if success else 0.0,
            "features": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in reader.spec.features.items()},
            "raw_cameras": {s: [h, w, 3] for s, (h, w) in reader.spec.raw_cameras.items()},
            "size_mb": sum(p.stat().st_size for p in reader.root.rglob("*") if p.is_file()) / 1e6}
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['root']}: LeRobot {info['codebase_version']}, {info['episodes']} episodes, {info['frames']} frames "
          f"at {info['fps']:g} Hz, {info['size_mb']:.1f} MB, success rate {info['success_rate']:.2f}")
    for t in info["tasks"]:
        print(f"task: {t}")
    for k, f in info["features"].items():
        print(f"  {k:40s} {f['dtype']:8s} {tuple(f['shape'])}")
    for s, shape in info["raw_cameras"].items():
        print(f"  raw frames of camera {s:20s} video    {tuple(shape)}  (raw/{s}/, not a LeRobot feature)")
    return 0


def _twin_configs(reader):  # noqa: ANN001, ANN202
    from launch.config import from_dict
    from twin.config import TwinConfig
    from twin.gaussian_scene import GaussianSceneConfig

    meta = reader.twin_meta
    if meta is None:
        raise ValueError(f"{reader.root} has no meta/twin.json: it cannot be re-rendered or replayed")
    return from_dict(TwinConfig, meta["twin"], "twin"), from_dict(GaussianSceneConfig, meta["gaussians"], "gaussians")


def _render(reader, args) -> int:  # noqa: ANN001
    import torch

    from policies.dataset import TwinRenderer, add_video_feature
    from twin.rig import VirtualCameraConfig

    torch.set_num_threads(1)
    w, h = (int(x) for x in args.size.lower().split("x"))
    cam = VirtualCameraConfig(args.camera, eye_m=_vec3(args.eye), target_m=_vec3(args.target), width=w, height=h,
                              hfov_deg=args.hfov)
    twin, gaussians = _twin_configs(reader)
    renderer = TwinRenderer(twin, gaussians, (cam,))

    def frames(i: int) -> np.ndarray:
        data = reader.episode(i)
        return renderer.render_episode(data["twin.body_poses"], data["twin.joint_pos"])[cam.serial]

    from launch.config import to_dict

    key = add_video_feature(reader.root, f"observation.images.{args.camera}", (h, w), frames, camera=to_dict(cam))
    print(f"added {key} to {reader.num_episodes} episode(s) of {reader.root}")
    return 0


def _replay(reader, episode: int) -> int:  # noqa: ANN001
    from policies.dataset import replay_episode

    twin, _ = _twin_configs(reader)
    r = replay_episode(reader, episode, twin)
    print(f"episode {episode}: {r['steps']} steps replayed; final block error {r['final_pos_err_mm']:.1f} mm, "
          f"{r['final_yaw_err_deg']:.1f} deg (median over steps {r['median_pos_err_mm']:.1f} mm); "
          f"replayed coverage {r['final_coverage']:.2f} vs recorded {r['recorded_coverage']:.2f}")
    return 0
