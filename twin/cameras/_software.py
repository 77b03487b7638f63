"""A librealsense software device shaped like a D400 camera: frames handed in by code travel through
the real librealsense pipeline (sync, alignment, recording) exactly as a USB camera's would."""

from __future__ import annotations

import collections

import numpy as np
import pyrealsense2 as rs

from calibration import CameraIntrinsics

from ._color_formats import BYTES_PER_PIXEL, from_rgb
from ._rsutil import intrinsics_to_rs, rs_color_format


class SoftwareRealSense:
    """A ``rs.software_device`` with a "Stereo Module" (Z16 depth) and an "RGB Camera" (colour in
    ``color_format``).

    Args:
        serial: serial number the device reports.
        color_intrinsics: colour stream intrinsics.
        depth_intrinsics: depth stream intrinsics (default: the colour ones).
        T_color_depth: pose of the depth camera in the colour camera frame, 4x4 [m] (librealsense's
            depth-to-colour extrinsics; the real D435 baseline is about 15 mm along x).
        depth_units_m: metres per depth count.
        fps_hz: nominal frame rate [Hz].
        color_format: the colour stream's format: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``yuyv``
            (even width); :meth:`push` takes RGB and stores it in this format. A pipeline must ask
            for this format (a software device converts nothing).
    """

    def __init__(
        self,
        serial: str,
        color_intrinsics: CameraIntrinsics,
        depth_intrinsics: CameraIntrinsics | None = None,
        T_color_depth: np.ndarray | None = None,
        depth_units_m: float = 0.001,
        fps_hz: int = 30,
        name: str = "Intel RealSense D435 (software)",
        color_format: str = "rgb8",
    ) -> None:
        fmt = rs_color_format(color_format)
        if color_format == "yuyv" and color_intrinsics.width % 2:
            raise ValueError(f"yuyv needs an even width, got {color_intrinsics.width}")
        self.serial = serial
        self.color_format = color_format
        self._color_bpp = BYTES_PER_PIXEL[color_format]
        self.depth_units_m = float(depth_units_m)
        dev = rs.software_device()
        dev.register_info(rs.camera_info.serial_number, serial)
        dev.register_info(rs.camera_info.name, name)
        dev.register_info(rs.camera_info.product_line, "D400")
        self._depth_sensor = dev.add_sensor("Stereo Module")
        self._color_sensor = dev.add_sensor("RGB Camera")
        di = depth_intrinsics or color_intrinsics
        ds = rs.video_stream()
        ds.type, ds.index, ds.uid = rs.stream.depth, 0, 0
        ds.width, ds.height, ds.fps, ds.bpp, ds.fmt = di.width, di.height, int(fps_hz), 2, rs.format.z16
        ds.intrinsics = intrinsics_to_rs(di)
        cs = rs.video_stream()
        cs.type, cs.index, cs.uid = rs.stream.color, 0, 1
        ci = color_intrinsics
        cs.width, cs.height, cs.fps, cs.bpp, cs.fmt = ci.width, ci.height, int(fps_hz), self._color_bpp, fmt
        cs.intrinsics = intrinsics_to_rs(ci)
        self._depth_profile = self._depth_sensor.add_video_stream(ds, True).as_video_stream_profile()
        self._color_profile = self._color_sensor.add_video_stream(cs, True).as_video_stream_profile()
        self._depth_sensor.add_read_only_option(rs.option.depth_units, self.depth_units_m)
        # Controls a D435 offers, with its ranges (values are stored, not simulated). Colour exposure
        # counts 100 µs units, as on the device.
        for sensor, option, lo, hi, step, default in (
            (self._color_sensor, rs.option.enable_auto_exposure, 0, 1, 1, 1),
            (self._color_sensor, rs.option.exposure, 1, 10000, 1, 156),
            (self._color_sensor, rs.option.gain, 0, 128, 1, 64),
            (self._color_sensor, rs.option.enable_auto_white_balance, 0, 1, 1, 1),
            (self._color_sensor, rs.option.white_balance, 2800, 6500, 10, 4600),
            (self._depth_sensor, rs.option.laser_power, 0, 360, 30, 150),
        ):
            rng = rs.option_range()  # fields set by name: the constructor's argument order is ambiguous
            rng.min, rng.max, rng.step, rng.default = float(lo), float(hi), float(step), float(default)
            sensor.add_option(option, rng, True)
        T = np.eye(4) if T_color_depth is None else np.asarray(T_color_depth, dtype=np.float64)
        ext = rs.extrinsics()
        # librealsense stores the rotation column-major.
        ext.rotation = [float(x) for x in T[:3, :3].T.ravel()]
        ext.translation = [float(x) for x in T[:3, 3]]
        self._depth_profile.register_extrinsics_to(self._color_profile, ext)
        dev.create_matcher(rs.matchers.dlr_c)
        self.device = dev
        self.color_intrinsics = ci
        self.depth_intrinsics = di
        self._keep: collections.deque = collections.deque(maxlen=16)  # pixel buffers in flight
        self._n = 0

    def push(
        self,
        rgb: np.ndarray,
        depth_m: np.ndarray | None,
        timestamp_ms: float,
        frame_number: int | None = None,
        domain: rs.timestamp_domain = rs.timestamp_domain.hardware_clock,
    ) -> None:
        """Hand one colour (uint8 (H, W, 3), RGB order; sent in the device's ``color_format``) and depth
        ([m] float, (H, W)) frame pair to the device."""
        n = self._n if frame_number is None else int(frame_number)
        self._n = n + 1
        if depth_m is not None:
            raw = np.ascontiguousarray(np.clip(np.rint(np.asarray(depth_m) / self.depth_units_m), 0, 65535).astype(np.uint16))
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = raw, raw.shape[1] * 2, 2
            f.timestamp, f.domain, f.frame_number = float(timestamp_ms), domain, n
            f.profile, f.depth_units = self._depth_profile, self.depth_units_m
            self._keep.append(raw)
            self._depth_sensor.on_video_frame(f)
        c = from_rgb(np.asarray(rgb, dtype=np.uint8), self.color_format)
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = c, c.shape[1] * self._color_bpp, self._color_bpp
        f.timestamp, f.domain, f.frame_number = float(timestamp_ms), domain, n
        f.profile = self._color_profile
        self._keep.append(c)
        self._color_sensor.on_video_frame(f)


__all__ = ["SoftwareRealSense"]
