"""Building a camera source from its config."""

from __future__ import annotations

from calibration import SetupCalibration, load_calibration

from ._config import CameraSourceConfig
from ._source import CameraSource


def make_source(config: CameraSourceConfig, calibration: SetupCalibration | None = None) -> CameraSource:
    """The camera source ``config.kind`` names (not started).

    The calibration is ``calibration`` if given, else the file at ``config.calibration_path`` if set.
    Backends (pyrealsense2, pyzmq) are imported only for the kind chosen.
    """
    if calibration is None and config.calibration_path:
        calibration = load_calibration(config.calibration_path)
    common = {"max_frame_age_s": config.max_frame_age_s, "frame_timeout_s": config.frame_timeout_s}
    if config.kind == "realsense":
        from ._realsense import RealSenseSource

        return RealSenseSource(config.realsense, calibration, **common)
    if config.kind == "recording":
        from ._recording import RecordingSource

        return RecordingSource(config.recording, calibration, **common)
    if config.kind == "stream":
        from ._stream import StreamSource

        return StreamSource(config.stream, calibration, **common)
    if config.kind == "synthetic":
        from ._synthetic import SyntheticSource

        return SyntheticSource(config.synthetic, **common)
    raise ValueError(f"unknown camera source kind {config.kind!r}")
