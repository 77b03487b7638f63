"""The calibration file: one per setup, YAML or JSON, loaded by every job that uses cameras.

Layout (YAML shown; JSON holds the same mapping)::

    format: realsim-calibration
    version: 1
    setup: lab-franka-1                 # free text
    date: '2026-11-25T09:30:00+00:00'   # ISO 8601, UTC
    world_frame: robot base, z up, metres
    notes: ''
    cameras:
      '123456789012':                   # serial number, always a string
        mount: static                   # static: T_world_camera; wrist: T_flange_camera
        intrinsics: {fx: .., fy: .., cx: .., cy: .., width: .., height: .., distortion_model: .., coeffs: [..]}
        intrinsics_source: device       # device | board | manual
        extrinsics_method: board        # board | hand_eye_eye_to_hand | hand_eye_eye_in_hand | manual | none
        T_world_camera: [[r00, r01, r02, tx], [..], [..], [0, 0, 0, 1]]   # metres, OpenCV camera frame
        T_flange_camera: null
        date: '...'
        residuals: {reprojection_rms_px: 0.21, n_views: 15, handeye_pos_consistency_mm: 0.8, ...}

Cameras use the OpenCV convention (x right, y down, z forward); ``world`` is the robot base frame.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ._errors import CalibrationFileError, MissingCameraError
from ._intrinsics import CameraIntrinsics
from ._pose import as_pose

FORMAT_NAME = "realsim-calibration"
FORMAT_VERSION = 1
MOUNTS = ("static", "wrist")
EXTRINSICS_METHODS = ("board", "hand_eye_eye_to_hand", "hand_eye_eye_in_hand", "manual", "none")


def utc_now_iso() -> str:
    """The current time as an ISO 8601 string in UTC, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclasses.dataclass
class CameraCalibration:
    """Calibration of one camera, keyed by its serial number.

    Attributes:
        serial: the camera's serial number (string).
        intrinsics: colour stream intrinsics (depth is aligned to colour, so they serve both).
        mount: ``"static"`` (fixed in the world; ``T_world_camera`` set) or ``"wrist"`` (on the robot's
            flange; ``T_flange_camera`` set, world pose follows the robot).
        T_world_camera: pose of the camera in the world (robot base) frame, 4x4 float64 [m], or None.
        T_flange_camera: pose of the camera in the robot flange frame, 4x4 float64 [m], or None.
        intrinsics_source: ``"device"``, ``"board"`` or ``"manual"``.
        extrinsics_method: one of ``EXTRINSICS_METHODS``.
        date: ISO 8601 time of this camera's calibration (UTC).
        residuals: named quality figures, e.g. ``reprojection_rms_px``, ``handeye_pos_consistency_mm``.
    """

    serial: str
    intrinsics: CameraIntrinsics
    mount: str = "static"
    T_world_camera: np.ndarray | None = None
    T_flange_camera: np.ndarray | None = None
    intrinsics_source: str = "device"
    extrinsics_method: str = "none"
    date: str = dataclasses.field(default_factory=utc_now_iso)
    residuals: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.serial, str) or not self.serial:
            raise CalibrationFileError(f"camera serial must be a non-empty string, got {self.serial!r}")
        if not isinstance(self.intrinsics, CameraIntrinsics):
            raise CalibrationFileError(f"camera {self.serial}: intrinsics must be CameraIntrinsics")
        if self.mount not in MOUNTS:
            raise CalibrationFileError(f"camera {self.serial}: mount must be one of {MOUNTS}, got {self.mount!r}")
        if self.extrinsics_method not in EXTRINSICS_METHODS:
            raise CalibrationFileError(
                f"camera {self.serial}: extrinsics_method must be one of {EXTRINSICS_METHODS}, got {self.extrinsics_method!r}"
            )
        try:
            if self.T_world_camera is not None:
                self.T_world_camera = as_pose(self.T_world_camera, f"camera {self.serial} T_world_camera")
            if self.T_flange_camera is not None:
                self.T_flange_camera = as_pose(self.T_flange_camera, f"camera {self.serial} T_flange_camera")
        except ValueError as exc:
            raise CalibrationFileError(str(exc)) from exc
        if self.mount == "wrist" and self.T_flange_camera is None and self.extrinsics_method != "none":
            raise CalibrationFileError(f"camera {self.serial}: a wrist camera needs T_flange_camera")
        self.residuals = {str(k): float(v) for k, v in dict(self.residuals).items()}

    def world_pose(self, T_world_flange: np.ndarray | None = None) -> np.ndarray:
        """``T_world_camera`` [m]; for a wrist camera, computed from the flange pose ``T_world_flange``.

        Raises:
            CalibrationFileError: the camera has no extrinsics, or a wrist camera got no flange pose.
        """
        if self.mount == "wrist":
            if self.T_flange_camera is None:
                raise CalibrationFileError(f"camera {self.serial} has no T_flange_camera")
            if T_world_flange is None:
                raise CalibrationFileError(f"camera {self.serial} is on the wrist: pass T_world_flange")
            return as_pose(T_world_flange, "T_world_flange") @ self.T_flange_camera
        if self.T_world_camera is None:
            raise CalibrationFileError(f"camera {self.serial} has no extrinsics (T_world_camera)")
        return self.T_world_camera.copy()

    def to_dict(self) -> dict[str, Any]:
        def mat(T: np.ndarray | None) -> list[list[float]] | None:
            return None if T is None else [[float(x) for x in row] for row in T]

        return {
            "mount": self.mount,
            "intrinsics": self.intrinsics.to_dict(),
            "intrinsics_source": self.intrinsics_source,
            "extrinsics_method": self.extrinsics_method,
            "T_world_camera": mat(self.T_world_camera),
            "T_flange_camera": mat(self.T_flange_camera),
            "date": self.date,
            "residuals": dict(self.residuals),
        }

    @classmethod
    def from_dict(cls, serial: str, data: dict[str, Any]) -> CameraCalibration:
        if not isinstance(data, dict):
            raise CalibrationFileError(f"camera {serial}: entry must be a mapping")
        known = {"mount", "intrinsics", "intrinsics_source", "extrinsics_method", "T_world_camera",
                 "T_flange_camera", "date", "residuals"}
        unknown = set(data) - known
        if unknown:
            raise CalibrationFileError(f"camera {serial}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        if "intrinsics" not in data:
            raise CalibrationFileError(f"camera {serial}: missing 'intrinsics'")
        try:
            intr = CameraIntrinsics.from_dict(data["intrinsics"])
        except (TypeError, ValueError) as exc:
            raise CalibrationFileError(f"camera {serial}: bad intrinsics: {exc}") from exc
        kw = {k: v for k, v in data.items() if k != "intrinsics" and v is not None}
        if "date" in kw:
            kw["date"] = str(kw["date"])
        return cls(serial=str(serial), intrinsics=intr, **kw)


@dataclasses.dataclass
class SetupCalibration:
    """All cameras of one setup: what a calibration file holds.

    Attributes:
        cameras: serial -> :class:`CameraCalibration`.
        setup: free-text name of the setup.
        date: ISO 8601 time the file was last written (UTC).
        notes: free text.
        world_frame: description of the world frame (the robot base frame, z up).
    """

    cameras: dict[str, CameraCalibration] = dataclasses.field(default_factory=dict)
    setup: str = ""
    date: str = dataclasses.field(default_factory=utc_now_iso)
    notes: str = ""
    world_frame: str = "robot base, z up, metres"

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(sorted(self.cameras))

    def camera(self, serial: str) -> CameraCalibration:
        """The entry for ``serial``. Raises :class:`MissingCameraError` naming the serial."""
        try:
            return self.cameras[str(serial)]
        except KeyError:
            raise MissingCameraError(str(serial), self.serials, self.setup) from None

    def require(self, serials: list[str] | tuple[str, ...]) -> None:
        """Raise :class:`MissingCameraError` for the first serial that has no entry."""
        for s in serials:
            self.camera(s)

    def with_camera(self, cal: CameraCalibration) -> SetupCalibration:
        """A copy with ``cal`` added or replacing the entry for its serial; ``date`` refreshed."""
        cams = dict(self.cameras)
        cams[cal.serial] = cal
        return dataclasses.replace(self, cameras=cams, date=utc_now_iso())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "setup": self.setup,
            "date": self.date,
            "world_frame": self.world_frame,
            "notes": self.notes,
            "cameras": {s: self.cameras[s].to_dict() for s in self.serials},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> SetupCalibration:
        if not isinstance(data, dict):
            raise CalibrationFileError(f"{where or 'calibration'}: top level must be a mapping")
        if data.get("format") != FORMAT_NAME:
            raise CalibrationFileError(f"{where or 'calibration'}: 'format' must be {FORMAT_NAME!r}, got {data.get('format')!r}")
        if data.get("version") != FORMAT_VERSION:
            raise CalibrationFileError(
                f"{where or 'calibration'}: unsupported version {data.get('version')!r} (this code reads {FORMAT_VERSION})"
            )
        cams_raw = data.get("cameras") or {}
        if not isinstance(cams_raw, dict):
            raise CalibrationFileError(f"{where or 'calibration'}: 'cameras' must be a mapping serial -> entry")
        cams = {str(s): CameraCalibration.from_dict(str(s), v) for s, v in cams_raw.items()}
        return cls(
            cameras=cams,
            setup=str(data.get("setup", "") or ""),
            date=str(data.get("date", "") or ""),
            notes=str(data.get("notes", "") or ""),
            world_frame=str(data.get("world_frame", "") or ""),
        )


def load_calibration(path: str | Path) -> SetupCalibration:
    """Read a calibration file (``.yaml``/``.yml`` or ``.json``).

    Raises:
        CalibrationFileError: the file is missing, unreadable, or not a valid calibration file.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationFileError(f"calibration file {path} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CalibrationFileError(f"calibration file {path} cannot be parsed: {exc}") from exc
    return SetupCalibration.from_dict(data, str(path))


def save_calibration(calibration: SetupCalibration, path: str | Path) -> Path:
    """Write ``calibration`` as YAML (or JSON when the path ends in ``.json``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = calibration.to_dict()
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


__all__ = [
    "CameraCalibration",
    "SetupCalibration",
    "load_calibration",
    "save_calibration",
    "utc_now_iso",
]
