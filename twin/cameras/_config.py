"""Typed configs of the camera sources (loaded by ``launch/config.py``)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

ColorFormat = Literal["rgb8", "bgr8", "rgba8", "bgra8", "yuyv"]
"""Colour formats that camera sources convert to RGB (librealsense's ``rs.format`` names)."""
COLOR_FORMATS: tuple[str, ...] = typing.get_args(ColorFormat)


@dataclasses.dataclass
class RealSenseCameraConfig:
    """One RealSense camera.

    Attributes:
        serial: the camera's serial number (required).
        width_px, height_px: colour (and depth) resolution [px].
        fps_hz: frame rate [Hz].
        enable_depth: stream depth (aligned to colour) as well as colour.
        exposure_us: fixed colour exposure [µs], applied in the RGB sensor's 100 µs steps; None keeps
            auto exposure.
        gain: fixed colour gain; None keeps the device's.
        white_balance_k: fixed white balance [K]; None keeps auto white balance.
        laser_power_mw: emitter power [mW]; None keeps the device's.
        record_path: when set, everything streamed is also recorded to this librealsense file.
        color_format: colour format asked of the device: ``rgb8`` (default), ``bgr8``, ``rgba8``,
            ``bgra8`` or ``yuyv`` (the D400 RGB sensor's native format, converted on this host
            rather than in librealsense). Frames are RGB whichever it is; a recording made with
            ``record_path`` keeps the format asked for.
    """

    serial: str = ""
    width_px: int = 640
    height_px: int = 480
    fps_hz: int = 30
    enable_depth: bool = True
    exposure_us: float | None = None
    gain: float | None = None
    white_balance_k: float | None = None
    laser_power_mw: float | None = None
    record_path: str = ""
    color_format: ColorFormat = "rgb8"


@dataclasses.dataclass
class RealSenseConfig:
    """Several RealSense cameras, one reader thread each.

    Attributes:
        cameras: the cameras, by serial.
        align_depth_to_color: reproject depth into the colour image (required for RGB-D frames).
        reconnect: restart a camera that fails or falls silent, until the source is stopped.
        silence_restart_s: a camera silent this long is restarted [s].
        reconnect_interval_s: wait between restart attempts [s].
        poll_timeout_s: one blocking wait on the device inside the reader thread [s].
        sync_tolerance_ms: largest colour/depth device-timestamp difference accepted as one frame
            [ms]; None: half a frame period.
    """

    cameras: tuple[RealSenseCameraConfig, ...] = ()
    align_depth_to_color: bool = True
    reconnect: bool = True
    silence_restart_s: float = 2.0
    reconnect_interval_s: float = 1.0
    poll_timeout_s: float = 0.2
    sync_tolerance_ms: float | None = None


@dataclasses.dataclass
class RecordingConfig:
    """Playback of librealsense recordings (``.db3``, or ``.bag`` from older versions), one per camera.
    Colour recorded as ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``yuyv`` plays back as RGB.

    Attributes:
        paths: recording files.
        real_time: play at the recorded rate; False plays as fast as the reader consumes (no drops).
        loop: start again at the end.
        sync_tolerance_ms: largest colour/depth timestamp difference accepted as one frame [ms];
            None: half a frame period.
        align_depth_to_color: reproject depth into the colour image; False passes depth through as
            recorded (it must then have the colour image's size, e.g. recorded already aligned).
    """

    paths: tuple[str, ...] = ()
    real_time: bool = True
    loop: bool = False
    sync_tolerance_ms: float | None = None
    align_depth_to_color: bool = True


@dataclasses.dataclass
class StreamConfig:
    """Subscriber to a camera stream.

    Attributes:
        endpoint: ZMQ endpoint of the publisher, e.g. ``tcp://127.0.0.1:5560``.
        serials: cameras expected in every message; empty accepts whatever the publisher sends.
        rcvhwm: ZMQ receive high-water mark [messages]; the receiver drains the socket and keeps only
            the newest set, so this bounds memory, not latency. (Very small marks make ZMQ drop
            messages while its lazily updated credit says the pipe is full.)
        use_stream_poses: use ``T_world_camera`` from the messages when the calibration lacks one.
    """

    endpoint: str = "tcp://127.0.0.1:5560"
    serials: tuple[str, ...] = ()
    rcvhwm: int = 8
    use_stream_poses: bool = True


@dataclasses.dataclass
class PublisherConfig:
    """Publisher of a camera stream.

    Attributes:
        endpoint: ZMQ endpoint to bind (or connect to with ``bind=False``).
        bind: bind the endpoint (the usual case) rather than connect.
        sndhwm: ZMQ send high-water mark [messages]; beyond it messages are dropped, never queued.
        depth_encoding: ``"float32"`` (metres, lossless) or ``"uint16_mm"`` (millimetres, half size).
        allow_non_loopback: permit binding a non-loopback address (the stream is not encrypted).
        zero_copy: hand image buffers to ZMQ without copying them; the caller must then not write to
            the arrays of a published frame set (ZMQ may send them later).
    """

    endpoint: str = "tcp://127.0.0.1:5560"
    bind: bool = True
    sndhwm: int = 8
    depth_encoding: Literal["float32", "uint16_mm"] = "float32"
    allow_non_loopback: bool = False
    zero_copy: bool = False


@dataclasses.dataclass
class SyntheticConfig:
    """Frames handed in by code; optionally a moving test pattern generated at ``pattern_fps_hz``.

    Attributes:
        serials: camera names.
        width_px, height_px: image size [px] of the test pattern.
        pattern_fps_hz: rate of the built-in test pattern [Hz]; 0 disables it (frames come from ``push``).
    """

    serials: tuple[str, ...] = ("synthetic0",)
    width_px: int = 480
    height_px: int = 270
    pattern_fps_hz: float = 0.0


@dataclasses.dataclass
class CameraSourceConfig:
    """Which camera source to open and its settings.

    Attributes:
        kind: ``realsense``, ``recording``, ``stream`` or ``synthetic``.
        calibration_path: calibration file giving intrinsics and ``T_world_camera`` per serial ("" none).
        max_frame_age_s: frames older than this are stale [s].
        frame_timeout_s: default wait for a complete frame set [s].
    """

    kind: Literal["realsense", "recording", "stream", "synthetic"] = "stream"
    calibration_path: str = ""
    max_frame_age_s: float = 0.1
    frame_timeout_s: float = 1.0
    realsense: RealSenseConfig = dataclasses.field(default_factory=RealSenseConfig)
    recording: RecordingConfig = dataclasses.field(default_factory=RecordingConfig)
    stream: StreamConfig = dataclasses.field(default_factory=StreamConfig)
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)


__all__ = [
    "COLOR_FORMATS",
    "CameraSourceConfig",
    "ColorFormat",
    "PublisherConfig",
    "RealSenseCameraConfig",
    "RealSenseConfig",
    "RecordingConfig",
    "StreamConfig",
    "SyntheticConfig",
]
