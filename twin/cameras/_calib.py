"""Applying a setup's calibration to frames."""

from __future__ import annotations

import numpy as np

from calibration import CameraIntrinsics, SetupCalibration


def calibrated(
    calibration: SetupCalibration | None, serial: str, device_intrinsics: CameraIntrinsics
) -> tuple[CameraIntrinsics, np.ndarray | None]:
    """Intrinsics and ``T_world_camera`` for ``serial``: the calibration file's when it has them at the
    stream's resolution, else the device's intrinsics and no pose."""
    if calibration is None or serial not in calibration.cameras:
        return device_intrinsics, None
    cam = calibration.cameras[serial]
    intr = device_intrinsics
    if (cam.intrinsics.width, cam.intrinsics.height) == (device_intrinsics.width, device_intrinsics.height):
        intr = cam.intrinsics
    T = cam.T_world_camera if cam.mount == "static" else None
    return intr, T
