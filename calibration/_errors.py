"""The calibration package's exception hierarchy."""

from __future__ import annotations


class CalibrationError(Exception):
    """Base of every error raised by :mod:`calibration`."""


class CalibrationFileError(CalibrationError, ValueError):
    """A calibration file is missing, malformed, or of an unknown format/version."""


class MissingCameraError(CalibrationError, LookupError):
    """The calibration holds no entry for a requested camera serial."""

    def __init__(self, serial: str, known: tuple[str, ...] | list[str] = (), where: str = "") -> None:
        self.serial = serial
        self.known = tuple(known)
        place = f" in {where}" if where else ""
        super().__init__(f"no calibration for camera serial {serial!r}{place}; calibrated serials: {list(self.known)}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])


class BoardNotFoundError(CalibrationError):
    """The ChArUco board was not found (or too few of its corners) in an image."""


class InsufficientDataError(CalibrationError):
    """Too few views, poses or corners for a well-posed estimate."""


class DegenerateMotionError(CalibrationError):
    """Robot motions for hand-eye calibration do not excite enough rotation axes."""


__all__ = [
    "BoardNotFoundError",
    "CalibrationError",
    "CalibrationFileError",
    "DegenerateMotionError",
    "InsufficientDataError",
    "MissingCameraError",
]
