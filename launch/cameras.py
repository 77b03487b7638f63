"""`realsim cameras`: list RealSense devices, record, play recordings, serve any source on the stream.

Usage examples::

    realsim cameras list
    realsim cameras record --serial 123456789012 --out runs/cam.db3 --duration-s 10
    realsim cameras record --serial 123456789012 --out cam.db3 --set exposure_us=8000 --set white_balance_k=4600
    realsim cameras play runs/cam.db3                         # real time, prints a line per second
    realsim cameras play runs/cam.db3 --fast --serve tcp://127.0.0.1:5560
    realsim cameras play runs/cam.db3 --fast --rrd runs/cam.rrd   # colour and depth to a rerun recording
    rerun runs/cam.rrd                                        # ... opened in the rerun viewer
    realsim cameras play runs/cam.db3 --show                  # an OpenCV window per camera (q quits)
    realsim cameras record --serial 123456789012 --out cam.db3 --set color_format=yuyv
    realsim cameras serve                                     # test pattern on tcp://127.0.0.1:5560
    realsim cameras serve --config serve.yaml --endpoint tcp://127.0.0.1:5561
    realsim cameras serve --set source.kind=realsense --set 'source.realsense.cameras=[{serial: "123456789012"}]'

``--config`` for ``serve`` is a YAML file with ``source`` (a ``twin.cameras.CameraSourceConfig``: kind,
calibration_path, realsense/recording/stream/synthetic sections), ``publish`` (a ``PublisherConfig``)
and ``duration_s``; ``--set key=value`` overrides one value. For ``record``,
``--set`` sets a ``RealSenseCameraConfig`` field (exposure_us, gain, white_balance_k, laser_power_mw,
color_format, ...). Recordings and cameras in rgb8, bgr8, rgba8, bgra8 or yuyv colour play as RGB.
``--show`` needs a display and an OpenCV with window support (``opencv-python``, not the headless
wheel); ``--rrd`` works anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable

from launch._common import add_config_arguments
from launch.config import ConfigError, load_config
from twin.cameras import CameraSourceConfig, PublisherConfig, SyntheticConfig


def _serve_source_default() -> CameraSourceConfig:
    return CameraSourceConfig(kind="synthetic", synthetic=SyntheticConfig(serials=("synthetic0",), pattern_fps_hz=30.0),
                              max_frame_age_s=0.5)


@dataclasses.dataclass
class ServeConfig:
    """`realsim cameras serve`: which source to publish, and where.

    Attributes:
        source: the camera source (default: a 30 Hz test pattern, so the job runs with no hardware).
        publish: the stream publisher.
        duration_s: stop after this long [s]; 0 runs until interrupted.
    """

    source: CameraSourceConfig = dataclasses.field(default_factory=_serve_source_default)
    publish: PublisherConfig = dataclasses.field(default_factory=PublisherConfig)
    duration_s: float = 0.0


def _loop(src, duration_s: float, publisher=None, label: str = "", on_set: Callable | None = None) -> int:
    """Read sets until ``duration_s`` (0: until Ctrl-C / end of recording, or until ``on_set`` returns
    False), optionally publishing them and handing each to ``on_set``; prints one line per second."""
    from twin.cameras import EndOfRecordingError, FrameTimeoutError, StaleFrameError

    t0 = time.monotonic()
    t_print, n, n_window = t0, 0, 0
    try:
        while duration_s <= 0 or time.monotonic() - t0 < duration_s:
            try:
                fs = src.read(allow_stale=publisher is None)
            except EndOfRecordingError:
                print(f"{label}end of recording after {n} frame sets")
                break
            except (FrameTimeoutError, StaleFrameError) as exc:
                print(f"{label}{exc}", file=sys.stderr)
                continue
            if publisher is not None:
                publisher.publish(fs)
            n += 1
            if on_set is not None and not on_set(fs):
                break
            n_window += 1
            now = time.monotonic()
            if now - t_print >= 1.0:
                desc = ", ".join(
                    f"{s}: #{f.frame_number} t={f.device_time_ms:.1f} ms age={f.age_s() * 1000:.1f} ms" for s, f in fs.items()
                )
                print(f"{label}{n_window / (now - t_print):5.1f} sets/s | {desc}")
                t_print, n_window = now, 0
    except KeyboardInterrupt:
        pass
    st = src.stats()
    print(f"{label}{n} frame sets; received {st.frames_received}; dropped {st.frames_dropped}; stale sets {st.stale_sets}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from twin.cameras import list_devices

    devices = list_devices()
    if not devices:
        print("no RealSense devices connected")
        return 0
    for d in devices:
        print(f"{d.serial}\t{d.name}\tfirmware {d.firmware}\tUSB {d.usb_type}\t{d.product_line}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from twin.cameras import RealSenseCameraConfig, RealSenseConfig, RealSenseSource

    base = {"serial": args.serial, "width_px": args.width, "height_px": args.height, "fps_hz": args.fps,
            "record_path": str(args.out)}
    cam = load_config(RealSenseCameraConfig, args.config, [f"{k}={v}" for k, v in base.items()] + list(args.overrides))
    if not cam.serial:
        print("realsim cameras record: --serial is required (see `realsim cameras list`)", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    src = RealSenseSource(RealSenseConfig(cameras=(cam,)), max_frame_age_s=1.0)
    with src:
        _loop(src, args.duration_s, label=f"[{cam.serial}] ")
    print(f"recorded to {args.out}")
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from twin.cameras import FramePublisher, FrameWindow, PublisherConfig, RecordingConfig, RecordingSource, RerunRecorder

    cfg = RecordingConfig(paths=tuple(str(p) for p in args.paths), real_time=not args.fast, loop=args.loop)
    src = RecordingSource(cfg, max_frame_age_s=1.0 if not args.fast else 60.0)
    window = rrd = pub = None

    def on_set(fs) -> bool:
        if rrd is not None:
            rrd.log(fs)
        return window.show(fs) if window is not None else True

    try:
        window = FrameWindow() if args.show else None  # fails here, before playing, without a display
        rrd = RerunRecorder(args.rrd) if args.rrd else None
        pub = FramePublisher(PublisherConfig(endpoint=args.serve)) if args.serve else None
        with src:
            print(f"playing {', '.join(cfg.paths)} ({'real time' if cfg.real_time else 'as fast as possible'}), "
                  f"{src.duration_s:.2f} s, cameras {list(src.serials)}")
            return _loop(src, args.duration_s, pub, on_set=on_set)
    finally:
        if pub is not None:
            pub.close()
        if window is not None:
            window.close()
        if rrd is not None:
            rrd.close()
            print(f"wrote {rrd.sets_logged} frame sets to {rrd.path}")


def _cmd_serve(args: argparse.Namespace) -> int:
    from twin.cameras import FramePublisher, make_source

    cfg = load_config(ServeConfig, args.config, list(args.overrides))
    pub_cfg = cfg.publish
    if args.endpoint:
        pub_cfg = dataclasses.replace(pub_cfg, endpoint=args.endpoint)
    if args.depth_encoding:
        pub_cfg = dataclasses.replace(pub_cfg, depth_encoding=args.depth_encoding)
    if args.allow_non_loopback:
        pub_cfg = dataclasses.replace(pub_cfg, allow_non_loopback=True)
    duration = cfg.duration_s if args.duration_s is None else args.duration_s
    src_cfg = cfg.source
    if src_cfg.kind == "synthetic" and src_cfg.synthetic.pattern_fps_hz <= 0:
        # Nothing hands frames in from the command line: serve the test pattern.
        src_cfg = dataclasses.replace(src_cfg, synthetic=dataclasses.replace(src_cfg.synthetic, pattern_fps_hz=30.0))
    if src_cfg.kind == "stream" and src_cfg.stream.endpoint == pub_cfg.endpoint:
        print("realsim cameras serve: the source is the stream being served; pick another endpoint", file=sys.stderr)
        return 2
    with FramePublisher(pub_cfg) as pub, make_source(src_cfg) as src:
        print(f"serving the {src_cfg.kind} source on {pub.endpoint}")
        return _loop(src, duration, pub)


def _run(func):
    def wrapped(args: argparse.Namespace) -> int:
        from calibration import CalibrationError
        from twin.cameras import CameraError

        try:
            return func(args)
        except (CameraError, CalibrationError, ConfigError, ValueError) as exc:
            print(f"realsim cameras: {exc}", file=sys.stderr)
            return 1

    return wrapped


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pathlib import Path

    p = sub.add_parser("cameras", help="list, record, play and serve cameras",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="cameras_command", metavar="ACTION", required=True)

    q = csub.add_parser("list", help="list connected RealSense devices")
    q.set_defaults(func=_run(_cmd_list))

    q = csub.add_parser("record", help="record one RealSense camera to a librealsense file (.db3)")
    q.add_argument("--serial", default="")
    q.add_argument("--out", type=Path, required=True, help="output file (.db3)")
    q.add_argument("--duration-s", type=float, default=10.0, help="seconds to record (0: until Ctrl-C)")
    q.add_argument("--width", type=int, default=640)
    q.add_argument("--height", type=int, default=480)
    q.add_argument("--fps", type=int, default=30)
    add_config_arguments(q)
    q.set_defaults(func=_run(_cmd_record))

    q = csub.add_parser("play", help="play librealsense recordings (.db3 or .bag), one per camera")
    q.add_argument("paths", nargs="+", type=Path)
    q.add_argument("--fast", action="store_true", help="as fast as possible instead of real time")
    q.add_argument("--loop", action="store_true")
    q.add_argument("--serve", default="", metavar="ENDPOINT", help="also publish on this camera-stream endpoint")
    q.add_argument("--rrd", type=Path, default=None, metavar="OUT.rrd",
                   help="also write colour and depth to a rerun recording (open it with `rerun OUT.rrd`)")
    q.add_argument("--show", action="store_true", help="also show colour and depth in an OpenCV window (needs a display)")
    q.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds (0: at the end)")
    q.set_defaults(func=_run(_cmd_play))

    q = csub.add_parser("serve", help="publish any camera source on the camera stream (ZMQ)")
    q.add_argument("--endpoint", default="", help="publisher endpoint (default publish.endpoint: tcp://127.0.0.1:5560)")
    q.add_argument("--depth-encoding", choices=("float32", "uint16_mm"), default="")
    q.add_argument("--allow-non-loopback", action="store_true", help="bind a non-loopback address (unencrypted)")
    q.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds (0: until Ctrl-C)")
    add_config_arguments(q)
    q.set_defaults(func=_run(_cmd_serve))
