"""The camera package's exception hierarchy."""

from __future__ import annotations


class CameraError(Exception):
    """Base of every error raised by :mod:`twin.cameras`."""


class CameraNotFoundError(CameraError, LookupError):
    """A configured camera (named by serial) is not connected, or a recording file is missing."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FrameTimeoutError(CameraError, TimeoutError):
    """No complete frame set arrived in time; the message names the serials that did not deliver."""

    def __init__(self, message: str, serials: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.serials = tuple(serials)


class StaleFrameError(CameraError):
    """The newest frame of one or more cameras is older than the configured maximum age."""

    def __init__(self, message: str, ages_s: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.ages_s = dict(ages_s or {})

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(self.ages_s)


class StreamProtocolError(CameraError, ValueError):
    """A camera-stream message is malformed or of another protocol version."""


class EndOfRecordingError(CameraError):
    """A recording played to its end (and is not looping); no further frame sets will come."""


class SourceClosedError(CameraError):
    """The source is not started, or was stopped."""


class ColorFormatError(CameraError, ValueError):
    """A colour format (of a camera, a recording or a config) that has no conversion to RGB; the
    message names it and the supported formats."""


__all__ = [
    "CameraError",
    "CameraNotFoundError",
    "ColorFormatError",
    "EndOfRecordingError",
    "FrameTimeoutError",
    "SourceClosedError",
    "StaleFrameError",
    "StreamProtocolError",
]
