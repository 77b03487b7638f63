"""`realsim calibrate`: ChArUco board, intrinsics, extrinsics, hand-eye, and the calibration check.

Usage examples::

    realsim calibrate board --out boards/charuco_7x5 --squares 7 5 --square-mm 40 --marker-mm 30
    realsim calibrate intrinsics --calibration calib/lab.yaml --serial 123456789012 \\
        --board boards/charuco_7x5.yaml --images 'shots/*.png'
    realsim calibrate extrinsics --calibration calib/lab.yaml --serial 123456789012 \\
        --board boards/charuco_9x6.yaml --board-pose 0.30 0.15 0.0 3.14159 0 0 --images 'table/*.png'
    realsim calibrate extrinsics --calibration calib/lab.yaml --serial 123456789012 \\
        --board boards/charuco_9x6.yaml --board-pose 0.30 0.15 0 3.14159 0 0 --source-config cams.yaml --views 5
    realsim calibrate hand-eye --calibration calib/lab.yaml --board boards/charuco_7x5.yaml --data handeye/
    realsim calibrate hand-eye-capture --bridge tcp://127.0.0.1:5557 --source-config cams.yaml \
        --serial 123456789012 --joints joints.yaml --data handeye/ --mode eye_to_hand \
        --calibration calib/lab.yaml --board boards/charuco_7x5.yaml       # moves the robot!
    realsim calibrate intrinsics --calibration calib/lab.yaml --serial 123456789012 --from-device --source-config cams.yaml
    realsim calibrate check --calibration calib/lab.yaml
    realsim calibrate check --calibration calib/lab.yaml --serial 123456789012 --board boards/charuco_9x6.yaml \
        --board-pose 0.30 0.15 0 3.14159 0 0 --images 'today/*.png'     # has the camera moved?

``--board-pose x y z rx ry rz`` is ``T_world_board``: position [m] and axis-angle rotation [rad] of the
board frame (origin at the chessboard's outer top-left corner, x right, y down the page, z into the
board) in the robot base frame. A board lying face up has rotation (pi, 0, 0) or similar.

A hand-eye data folder holds ``views.yaml``::

    mode: eye_to_hand            # or eye_in_hand
    serial: '123456789012'
    views:
      - {image: view_000.png, q_rad: [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.8]}   # joints: FK gives T_world_flange
      - {image: view_001.png, T_world_flange: [[...], [...], [...], [0, 0, 0, 1]]}

Images are RGB PNG/JPEG files. Results are merged into the calibration file (one per setup).
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np

from launch.config import ConfigError


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _expand(patterns: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        hits = sorted(glob.glob(p))
        out += [Path(h) for h in hits] if hits else [Path(p)]
    return out


def _load_setup(path: Path):
    from calibration import SetupCalibration, load_calibration

    return load_calibration(path) if path.is_file() else SetupCalibration(setup=path.stem)


def _capture(args: argparse.Namespace, serial: str, n: int) -> tuple[list[np.ndarray], object]:
    """Frames of camera ``serial`` from a live source (one read per view, Enter between views if asked)."""
    from launch.config import load_config
    from twin.cameras import CameraSourceConfig, make_source

    cfg = load_config(CameraSourceConfig, args.source_config, list(args.overrides))
    images, intr = [], None
    with make_source(cfg) as src:
        for i in range(n):
            if args.interactive:
                input(f"view {i + 1}/{n}: place the board, then press Enter ")
            fs = src.read(timeout_s=5.0)
            if serial not in fs:
                raise ValueError(f"the source has no camera {serial!r}; it has {list(fs.serials)}")
            images.append(np.array(fs[serial].rgb))
            intr = fs[serial].intrinsics
    return images, intr


def _images_or_capture(args: argparse.Namespace, serial: str) -> tuple[list[np.ndarray], object]:
    if args.images:
        return [_read_rgb(p) for p in _expand(args.images)], None
    if args.source_config is not None:
        return _capture(args, serial, args.views)
    raise ValueError("give --images or --source-config")


def _cmd_board(args: argparse.Namespace) -> int:
    from calibration import CharucoBoardSpec, write_board

    spec = CharucoBoardSpec(args.squares[0], args.squares[1], args.square_mm / 1000.0, args.marker_mm / 1000.0,
                            args.dictionary)
    out = write_board(spec, args.out, dpi=args.dpi, margin_m=args.margin_mm / 1000.0)
    print(f"wrote {out.png_path}, {out.pdf_path} ({out.page_size_m[0] * 1000:.1f} x {out.page_size_m[1] * 1000:.1f} mm "
          f"at {out.dpi:.2f} dpi) and {out.params_path}")
    print("print at 100% (actual size) and measure a square: it must be "
          f"{args.square_mm:.2f} mm")
    return 0


def _detections(spec, images: list[np.ndarray]) -> list:
    from calibration import BoardNotFoundError, detect_board

    dets = []
    for i, img in enumerate(images):
        try:
            dets.append(detect_board(img, spec))
        except BoardNotFoundError as exc:
            print(f"view {i}: {exc}", file=sys.stderr)
    return dets


def _cmd_intrinsics(args: argparse.Namespace) -> int:
    import dataclasses

    from calibration import CameraCalibration, CharucoBoardSpec, estimate_intrinsics, save_calibration

    setup = _load_setup(args.calibration)
    old = setup.cameras.get(args.serial)
    residuals = dict(old.residuals) if old else {}
    if args.from_device:
        if args.source_config is None:
            raise ValueError("--from-device reads the intrinsics the camera reports: give --source-config")
        _, intr = _capture(args, args.serial, 1)
        source, rms, views = "device", None, 0
    else:
        if args.board is None:
            raise ValueError("--board is required to estimate intrinsics from board images")
        spec = CharucoBoardSpec.load(args.board)
        images, _ = _images_or_capture(args, args.serial)
        res = estimate_intrinsics(_detections(spec, images))
        intr, source, rms, views = res.intrinsics, "board", res.reprojection_rms_px, res.n_views
        residuals["intrinsics_rms_px"] = rms
    cam = (dataclasses.replace(old, intrinsics=intr, intrinsics_source=source, residuals=residuals)
           if old else CameraCalibration(args.serial, intr, intrinsics_source=source, residuals=residuals))
    save_calibration(setup.with_camera(cam), args.calibration)
    how = "from the device" if rms is None else f"rms={rms:.3f} px over {views} views"
    print(f"{args.serial}: {intr.width}x{intr.height} fx={intr.fx:.2f} fy={intr.fy:.2f} cx={intr.cx:.2f} cy={intr.cy:.2f} "
          f"{intr.distortion_model} {np.round(intr.coeffs, 5).tolist()} {how} -> {args.calibration}")
    return 0


def _cmd_extrinsics(args: argparse.Namespace) -> int:
    import dataclasses

    from calibration import (
        CameraCalibration,
        CharucoBoardSpec,
        InsufficientDataError,
        estimate_extrinsics,
        pose_from_rotvec,
        save_calibration,
    )

    spec = CharucoBoardSpec.load(args.board)
    T_world_board = pose_from_rotvec(args.board_pose[3:], args.board_pose[:3])
    images, live_intr = _images_or_capture(args, args.serial)
    setup = _load_setup(args.calibration)
    old = setup.cameras.get(args.serial)
    intr = old.intrinsics if old is not None else live_intr
    if intr is None:
        raise InsufficientDataError(
            f"no intrinsics for camera {args.serial}: run `realsim calibrate intrinsics` or capture with --source-config"
        )
    res = estimate_extrinsics(_detections(spec, images), intr, T_world_board)
    residuals = dict(old.residuals) if old else {}
    residuals.update({"reprojection_rms_px": res.reprojection_rms_px, "n_views": float(res.n_views),
                      "view_spread_mm": res.view_spread_mm})
    fields = {"T_world_camera": res.T_world_camera, "mount": "static", "T_flange_camera": None,
              "extrinsics_method": "board", "residuals": residuals}
    cam = (dataclasses.replace(old, **fields) if old else
           CameraCalibration(args.serial, intr, intrinsics_source="device", **fields))
    save_calibration(setup.with_camera(cam), args.calibration)
    t = res.T_world_camera[:3, 3]
    print(f"{args.serial}: T_world_camera position [{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}] m, "
          f"rms {res.reprojection_rms_px:.3f} px over {res.n_views} views ({res.n_corners} corners) -> {args.calibration}")
    return 0


def _cmd_hand_eye(args: argparse.Namespace) -> int:
    import dataclasses

    from calibration import CharucoBoardSpec, calibrate_hand_eye, load_hand_eye_views, save_calibration, utc_now_iso

    from twin.franka import PandaKinematics

    spec = CharucoBoardSpec.load(args.board)
    views = load_hand_eye_views(args.data, spec, _read_rgb, PandaKinematics().flange_pose, args.mode, args.serial)
    for line in views.skipped:
        print(f"{line}; skipped", file=sys.stderr)
    mode, serial = views.mode, views.serial
    setup = _load_setup(args.calibration)
    cam = setup.camera(serial)  # intrinsics must be known
    poses, dets = views.T_world_flange, views.detections
    res = calibrate_hand_eye(poses, mode=mode, detections=dets, intrinsics=cam.intrinsics, min_poses=args.min_poses)
    residuals = dict(cam.residuals)
    residuals.update(res.residuals())
    if mode == "eye_to_hand":
        new = dataclasses.replace(cam, mount="static", T_world_camera=res.T_world_camera, T_flange_camera=None,
                                  extrinsics_method="hand_eye_eye_to_hand", residuals=residuals)
    else:
        new = dataclasses.replace(cam, mount="wrist", T_flange_camera=res.T_flange_camera, T_world_camera=None,
                                  extrinsics_method="hand_eye_eye_in_hand", residuals=residuals)
    new = dataclasses.replace(new, date=utc_now_iso())
    save_calibration(setup.with_camera(new), args.calibration)
    print(f"{serial}: {mode} from {res.n_poses} poses: reprojection {res.reprojection_rms_px:.3f} px, consistency "
          f"{res.consistency_pos_mm:.2f} mm / {res.consistency_rot_deg:.3f} deg -> {args.calibration}")
    return 0


def _cmd_hand_eye_capture(args: argparse.Namespace) -> int:
    """Drive the robot (through the bridge) to each configuration of --joints, record views into --data,
    then calibrate when --calibration and --board are given."""
    import cv2
    import yaml

    from calibration import CalibrationError, write_views_file
    from launch.config import load_config
    from twin.cameras import CameraSourceConfig
    from twin.franka import PandaKinematics

    raw = yaml.safe_load(args.joints.read_text()) or {}
    targets = [np.asarray(q, dtype=np.float64) for q in (raw.get("q_rad") if isinstance(raw, dict) else raw) or []]
    if not targets or any(q.shape != (7,) for q in targets):
        raise ValueError(f"{args.joints}: expected a list of 7 joint positions per view under 'q_rad'")
    kin = PandaKinematics()
    args.data.mkdir(parents=True, exist_ok=True)
    cam_cfg = load_config(CameraSourceConfig, args.source_config, list(args.overrides))
    views_meta: list[dict] = []

    def save(i: int, view) -> None:
        name = f"view_{i:03d}.png"
        cv2.imwrite(str(args.data / name), cv2.cvtColor(view.rgb, cv2.COLOR_RGB2BGR))
        views_meta.append({"image": name, "q_rad": view.q_rad.tolist(),
                           "T_world_flange": kin.flange_pose(view.q_rad).tolist()})
        write_views_file(args.data, args.mode, args.serial, views_meta)
        print(f"view {i + 1}/{len(targets)} captured")

    from robot_bridge import BridgeError

    try:
        _capture_views(args, targets, cam_cfg, save)
    except BridgeError as exc:
        raise CalibrationError(f"robot bridge {args.bridge}: {exc}") from exc
    print(f"{len(views_meta)} views in {args.data}")
    if args.calibration is not None and args.board is not None:
        args.min_poses = min(5, len(views_meta))
        return _cmd_hand_eye(args)
    return 0


def _capture_views(args: argparse.Namespace, targets: list, cam_cfg, save) -> None:
    from calibration import CalibrationError, capture_hand_eye_views
    from robot_bridge import BridgeClient, ClientConfig
    from twin.cameras import make_source

    with BridgeClient(ClientConfig(server_address=args.bridge, rate_hz=args.rate_hz)) as client, make_source(cam_cfg) as src:
        client.connect()

        def measured(timeout_s: float):
            st = client.poll(timeout_s=timeout_s)
            if st is None:
                raise CalibrationError("no joint state from the robot bridge")
            return np.asarray(st.q_rad), np.asarray(st.dq_rad_s)

        def grab(not_before_ns: int) -> np.ndarray:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                f = src.read(timeout_s=2.0)[args.serial]
                if f.host_time_ns >= not_before_ns:
                    return np.array(f.rgb)
            raise CalibrationError(f"no fresh image from camera {args.serial}")

        capture_hand_eye_views(targets, client.send_target, measured, grab, max_speed_rad_s=args.max_speed_rad_s,
                               rate_hz=args.rate_hz, settle_s=args.settle_s, on_view=save)


def _cmd_check(args: argparse.Namespace) -> int:
    from calibration import QualityThresholds, load_calibration, quality_report

    setup = load_calibration(args.calibration)
    th = QualityThresholds(args.max_rms_px, args.max_handeye_mm, args.max_handeye_deg, args.max_age_days)
    rep = quality_report(setup, th)
    print(f"{args.calibration}: setup {setup.setup!r}, written {setup.date}, cameras {list(setup.serials)}")
    print(rep.format())
    ok = rep.ok
    if args.images or args.source_config is not None:
        ok = _check_against_board(args, setup, th) and ok
    return 0 if ok else 1


def _check_against_board(args: argparse.Namespace, setup, th) -> bool:
    """Reproject the board, at its known world pose, through the stored calibration into new images:
    the RMS distance to the detected corners shows whether the camera moved since calibration."""
    from calibration import CharucoBoardSpec, board_reprojection_rms, pose_from_rotvec

    if not args.serial or args.board is None or args.board_pose is None:
        raise ValueError("checking against new images needs --serial, --board and --board-pose")
    images, _ = _images_or_capture(args, args.serial)
    rms, n_views = board_reprojection_rms(setup.camera(args.serial), CharucoBoardSpec.load(args.board),
                                          pose_from_rotvec(args.board_pose[3:], args.board_pose[:3]), images)
    ok = rms <= th.max_reprojection_rms_px
    print(f"{args.serial}: board at the given pose reprojects with {rms:.3f} px RMS over {n_views} views "
          f"(limit {th.max_reprojection_rms_px:g}) {'ok' if ok else 'FAIL: the camera or the board moved'}")
    return ok


def _run(func):
    def wrapped(args: argparse.Namespace) -> int:
        from calibration import CalibrationError
        from twin.cameras import CameraError

        try:
            return func(args)
        except (CalibrationError, CameraError, ConfigError, ValueError) as exc:
            print(f"realsim calibrate: {exc}", file=sys.stderr)
            return 1

    return wrapped


def _add_capture_args(q: argparse.ArgumentParser) -> None:
    from launch._common import add_config_arguments

    q.add_argument("--images", nargs="+", default=[], help="board images (globs allowed)")
    q.add_argument("--source-config", type=Path, default=None,
                   help="capture live from this camera-source config (twin.cameras.CameraSourceConfig YAML)")
    q.add_argument("--views", type=int, default=5, help="live views to capture")
    q.add_argument("--interactive", action="store_true", help="wait for Enter before each live view")
    add_config_arguments(q)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="camera calibration: board, intrinsics, extrinsics, hand-eye, check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="calibrate_command", metavar="ACTION", required=True)

    q = csub.add_parser("board", help="write a printable ChArUco board (PNG + PDF at exact scale + parameters)")
    q.add_argument("--out", type=Path, default=Path("charuco_board"), help="output path prefix")
    q.add_argument("--squares", type=int, nargs=2, default=(7, 5), metavar=("X", "Y"))
    q.add_argument("--square-mm", type=float, default=40.0)
    q.add_argument("--marker-mm", type=float, default=30.0)
    q.add_argument("--dictionary", default="DICT_5X5_100")
    q.add_argument("--dpi", type=float, default=300.0)
    q.add_argument("--margin-mm", type=float, default=10.0)
    q.set_defaults(func=_run(_cmd_board))

    for name, func, helptext in (
        ("intrinsics", _cmd_intrinsics, "estimate intrinsics from board images (tilted views)"),
        ("extrinsics", _cmd_extrinsics, "T_world_camera from views of a board at a known world pose"),
    ):
        q = csub.add_parser(name, help=helptext)
        q.add_argument("--calibration", type=Path, required=True, help="calibration file to update")
        q.add_argument("--serial", required=True)
        q.add_argument("--board", type=Path, required=name == "extrinsics",
                       help="board parameters YAML (from `calibrate board`)")
        if name == "intrinsics":
            q.add_argument("--from-device", action="store_true",
                           help="store the intrinsics the camera reports (live, via --source-config)")
        if name == "extrinsics":
            q.add_argument("--board-pose", type=float, nargs=6, required=True, metavar=("X", "Y", "Z", "RX", "RY", "RZ"),
                           help="T_world_board: position [m] and axis-angle [rad]")
        _add_capture_args(q)
        q.set_defaults(func=_run(func))

    q = csub.add_parser("hand-eye", help="hand-eye calibration from a folder of board images and robot poses")
    q.add_argument("--calibration", type=Path, required=True)
    q.add_argument("--board", type=Path, required=True)
    q.add_argument("--data", type=Path, required=True, help="folder with views.yaml and images")
    q.add_argument("--serial", default="")
    q.add_argument("--mode", choices=("eye_to_hand", "eye_in_hand"), default=None)
    q.add_argument("--min-poses", type=int, default=5)
    q.set_defaults(func=_run(_cmd_hand_eye))

    q = csub.add_parser("hand-eye-capture", help="drive the robot through joint configurations and record hand-eye views")
    q.add_argument("--bridge", default="tcp://127.0.0.1:5557", help="robot bridge server address")
    q.add_argument("--joints", type=Path, required=True, help="YAML with q_rad: a list of 7 joint positions per view")
    q.add_argument("--source-config", type=Path, default=None, help="camera source config (twin.cameras.CameraSourceConfig)")
    q.add_argument("--serial", required=True)
    q.add_argument("--data", type=Path, required=True, help="folder to write views.yaml and images into")
    q.add_argument("--mode", choices=("eye_to_hand", "eye_in_hand"), default="eye_to_hand")
    q.add_argument("--max-speed-rad-s", type=float, default=0.3)
    q.add_argument("--rate-hz", type=float, default=50.0)
    q.add_argument("--settle-s", type=float, default=0.5)
    q.add_argument("--calibration", type=Path, default=None, help="calibrate into this file after capturing")
    q.add_argument("--board", type=Path, default=None)
    from launch._common import add_config_arguments

    add_config_arguments(q)
    q.set_defaults(func=_run(_cmd_hand_eye_capture))

    q = csub.add_parser("check", help="quality report of a calibration file (exit 1 if it fails)")
    q.add_argument("--calibration", type=Path, required=True)
    q.add_argument("--max-rms-px", type=float, default=1.0)
    q.add_argument("--max-handeye-mm", type=float, default=2.0)
    q.add_argument("--max-handeye-deg", type=float, default=0.5)
    q.add_argument("--max-age-days", type=float, default=0.0)
    q.add_argument("--serial", default="", help="with new images: the camera to check against the board")
    q.add_argument("--board", type=Path, default=None)
    q.add_argument("--board-pose", type=float, nargs=6, default=None, metavar=("X", "Y", "Z", "RX", "RY", "RZ"))
    _add_capture_args(q)
    q.set_defaults(func=_run(_cmd_check))
