"""Camera sources for the twin: RealSense cameras, librealsense recordings, the network stream and
frames handed in by code, all yielding the same synchronized :class:`FrameSet`.

Cameras and recordings may deliver colour as ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``yuyv``
(:data:`COLOR_FORMATS`); it is converted to RGB (:func:`to_rgb`). :class:`RerunRecorder` and
:class:`FrameWindow` show frame sets.

Each frame holds RGB uint8 (H, W, 3), depth aligned to colour in metres (float32), the colour
intrinsics, ``T_world_camera`` (4x4 [m], OpenCV camera axes, from the setup's calibration), the
device timestamp [ms] and the host receive time (``time.monotonic_ns()``). Sources keep only the
newest frame per camera; a frame older than ``max_frame_age_s`` raises :class:`StaleFrameError`.

Importing this package loads neither pyrealsense2 nor pyzmq; each source class loads its backend on
first access. Example::

    from twin.cameras import FramePublisher, PublisherConfig, StreamConfig, StreamSource

    with StreamSource(StreamConfig(endpoint="tcp://127.0.0.1:5560")) as src:
        frames = src.read(timeout_s=1.0)
        rgb = frames["123456789012"].rgb
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import (
    COLOR_FORMATS,
    CameraSourceConfig,
    ColorFormat,
    PublisherConfig,
    RealSenseCameraConfig,
    RealSenseConfig,
    RecordingConfig,
    StreamConfig,
    SyntheticConfig,
)
from ._errors import (
    CameraError,
    CameraNotFoundError,
    ColorFormatError,
    EndOfRecordingError,
    FrameTimeoutError,
    SourceClosedError,
    StaleFrameError,
    StreamProtocolError,
)
from ._factory import make_source
from ._source import CameraSource
from ._synthetic import SyntheticSource
from ._types import CameraFrame, FrameSet, SourceStats

_LAZY = {
    "FramePublisher": "._stream",
    "StreamSource": "._stream",
    "PROTOCOL_VERSION": "._stream",
    "encode_frame_set": "._stream",
    "is_loopback_endpoint": "._stream",
    "RealSenseSource": "._realsense",
    "DeviceInfo": "._realsense",
    "list_devices": "._realsense",
    "RecordingSource": "._recording",
    "RECORDING_SUFFIXES": "._recording",
    "SoftwareRealSense": "._software",
    "to_rgb": "._color_formats",
    "from_rgb": "._color_formats",
    "RerunRecorder": "._viewers",
    "FrameWindow": "._viewers",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._color_formats import from_rgb, to_rgb
    from ._realsense import DeviceInfo, RealSenseSource, list_devices
    from ._recording import RECORDING_SUFFIXES, RecordingSource
    from ._software import SoftwareRealSense
    from ._stream import PROTOCOL_VERSION, FramePublisher, StreamSource, encode_frame_set, is_loopback_endpoint
    from ._viewers import FrameWindow, RerunRecorder


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'twin.cameras' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "COLOR_FORMATS",
    "CameraError",
    "CameraFrame",
    "CameraNotFoundError",
    "CameraSource",
    "CameraSourceConfig",
    "ColorFormat",
    "ColorFormatError",
    "DeviceInfo",
    "EndOfRecordingError",
    "FramePublisher",
    "FrameSet",
    "FrameTimeoutError",
    "FrameWindow",
    "PROTOCOL_VERSION",
    "PublisherConfig",
    "RECORDING_SUFFIXES",
    "RealSenseCameraConfig",
    "RealSenseConfig",
    "RealSenseSource",
    "RecordingConfig",
    "RecordingSource",
    "RerunRecorder",
    "SoftwareRealSense",
    "SourceClosedError",
    "SourceStats",
    "StaleFrameError",
    "StreamConfig",
    "StreamProtocolError",
    "StreamSource",
    "SyntheticConfig",
    "SyntheticSource",
    "encode_frame_set",
    "from_rgb",
    "is_loopback_endpoint",
    "list_devices",
    "make_source",
    "to_rgb",
]
