"""RealSense cameras through librealsense: one pipeline and reader thread per camera."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping

import pyrealsense2 as rs

from calibration import SetupCalibration

from ._calib import calibrated
from ._color_formats import check_color_format
from ._config import RealSenseCameraConfig, RealSenseConfig
from ._errors import CameraError, CameraNotFoundError
from ._rsutil import FramePairer, domain_name, frames_to_arrays, intrinsics_from_rs, rs_color_format
from ._source import CameraSource, _LatestBuffer
from ._types import CameraFrame


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """A connected RealSense device."""

    serial: str
    name: str
    firmware: str
    usb_type: str
    product_line: str


def _info(dev: rs.device, key: rs.camera_info) -> str:
    return dev.get_info(key) if dev.supports(key) else ""


def list_devices(context: rs.context | None = None) -> list[DeviceInfo]:
    """Connected RealSense devices."""
    ctx = context or rs.context()
    out = []
    for dev in ctx.query_devices():
        out.append(DeviceInfo(
            _info(dev, rs.camera_info.serial_number), _info(dev, rs.camera_info.name),
            _info(dev, rs.camera_info.firmware_version), _info(dev, rs.camera_info.usb_type_descriptor),
            _info(dev, rs.camera_info.product_line),
        ))
    return out


# The D400 RGB sensor takes exposure in units of 100 µs.
_COLOR_EXPOSURE_UNIT_US = 100.0


def _set_option(sensor: rs.sensor, option: rs.option, value: float, serial: str) -> None:
    name = _info(sensor, rs.camera_info.name)
    if not sensor.supports(option):
        raise CameraError(f"camera {serial}: sensor {name!r} has no option {option}")
    try:
        sensor.set_option(option, float(value))
    except RuntimeError as exc:
        r = sensor.get_option_range(option)
        raise CameraError(
            f"camera {serial}: sensor {name!r} rejects {option} = {value:g} (range {r.min:g}..{r.max:g}, step {r.step:g}): {exc}"
        ) from exc


def _sensor_named(dev: rs.device, kind: str) -> rs.sensor | None:
    for s in dev.query_sensors():
        if kind == "color" and (s.is_color_sensor() or "RGB" in _info(s, rs.camera_info.name)):
            return s
        if kind == "depth" and (s.is_depth_sensor() or "Stereo" in _info(s, rs.camera_info.name)):
            return s
    return None


class _Reader:
    """Owns one camera's pipeline; the thread reads, aligns and converts frames into the buffer."""

    def __init__(
        self,
        cam: RealSenseCameraConfig,
        cfg: RealSenseConfig,
        buffer: _LatestBuffer,
        calibration: SetupCalibration | None,
        context: rs.context,
        device: rs.device | None,
    ) -> None:
        self.cam, self.cfg, self.buffer, self.calibration = cam, cfg, buffer, calibration
        self.context, self.injected = context, device
        self.pipe: rs.pipeline | None = None
        self.align = rs.align(rs.stream.color) if (cam.enable_depth and cfg.align_depth_to_color) else None
        self.stop_evt = threading.Event()
        self.thread: threading.Thread | None = None
        self.intrinsics = None
        self.T_world_camera = None

    def _find_device(self) -> rs.device | None:
        if self.injected is not None:
            return self.injected
        for dev in self.context.query_devices():
            if _info(dev, rs.camera_info.serial_number) == self.cam.serial:
                return dev
        return None

    def open(self) -> None:
        cam = self.cam
        dev = self._find_device()
        if dev is None:
            found = [_info(d, rs.camera_info.serial_number) for d in self.context.query_devices()]
            raise CameraNotFoundError(f"RealSense camera with serial {cam.serial!r} is not connected; connected serials: {found}")
        pipe = rs.pipeline(self.context)
        conf = rs.config()
        if self.injected is not None:
            pipe.set_device(dev)
        else:
            conf.enable_device(cam.serial)
        conf.enable_stream(rs.stream.color, cam.width_px, cam.height_px, rs_color_format(cam.color_format), cam.fps_hz)
        if cam.enable_depth:
            conf.enable_stream(rs.stream.depth, cam.width_px, cam.height_px, rs.format.z16, cam.fps_hz)
        if cam.record_path:
            conf.enable_record_to_file(cam.record_path)
        try:
            profile = pipe.start(conf)
        except RuntimeError as exc:
            raise CameraError(
                f"camera {cam.serial}: cannot start colour ({cam.color_format}){'+depth' if cam.enable_depth else ''} "
                f"{cam.width_px}x{cam.height_px} @ {cam.fps_hz} Hz: {exc}"
            ) from exc
        try:
            self._apply_options(profile.get_device())
        except Exception:
            pipe.stop()
            raise
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.intrinsics, self.T_world_camera = calibrated(self.calibration, cam.serial, intrinsics_from_rs(color.get_intrinsics()))
        self.pipe = pipe

    def _apply_options(self, dev: rs.device) -> None:
        cam = self.cam
        color = _sensor_named(dev, "color")
        if color is not None:
            if cam.exposure_us is not None:
                _set_option(color, rs.option.enable_auto_exposure, 0, cam.serial)
                _set_option(color, rs.option.exposure, round(cam.exposure_us / _COLOR_EXPOSURE_UNIT_US), cam.serial)
            if cam.gain is not None:
                _set_option(color, rs.option.gain, cam.gain, cam.serial)
            if cam.white_balance_k is not None:
                _set_option(color, rs.option.enable_auto_white_balance, 0, cam.serial)
                _set_option(color, rs.option.white_balance, cam.white_balance_k, cam.serial)
        elif cam.exposure_us is not None or cam.white_balance_k is not None or cam.gain is not None:
            raise CameraError(f"camera {cam.serial}: no colour sensor to set exposure/white balance on")
        if cam.laser_power_mw is not None:
            depth = _sensor_named(dev, "depth")
            if depth is None:
                raise CameraError(f"camera {cam.serial}: no depth sensor to set the laser power on")
            _set_option(depth, rs.option.laser_power, cam.laser_power_mw, cam.serial)

    def close(self) -> None:
        if self.pipe is not None:
            try:
                self.pipe.stop()
            except RuntimeError:
                pass
            self.pipe = None

    def start_thread(self) -> None:
        self.stop_evt.clear()
        self.thread = threading.Thread(target=self.run, name=f"realsense-{self.cam.serial}", daemon=True)
        self.thread.start()

    def _restart(self, why: str) -> bool:
        """Close and reopen until it works or the source stops; False if stopped or not allowed."""
        serial = self.cam.serial
        self.buffer.note_error(f"camera {serial}: {why}")
        if not self.cfg.reconnect:
            self.buffer.fail(CameraError(f"camera {serial}: {why} (reconnect disabled)"))
            return False
        self.close()
        while not self.stop_evt.is_set():
            try:
                self.open()
                self.buffer.note_reconnect(serial)
                return True
            except CameraError as exc:
                self.buffer.note_error(f"camera {serial}: reconnect failed: {exc}")
            self.stop_evt.wait(self.cfg.reconnect_interval_s)
        return False

    def run(self) -> None:
        serial = self.cam.serial
        timeout_ms = max(1, int(self.cfg.poll_timeout_s * 1000))
        pairer = FramePairer(self.cfg.sync_tolerance_ms if self.cfg.sync_tolerance_ms is not None else 500.0 / self.cam.fps_hz)
        last_frame = time.monotonic()
        try:
            while not self.stop_evt.is_set():
                try:
                    ok, fs = self.pipe.try_wait_for_frames(timeout_ms)
                except RuntimeError as exc:
                    if self.stop_evt.is_set() or not self._restart(f"device error: {exc}"):
                        return
                    last_frame = time.monotonic()
                    continue
                recv_ns = time.monotonic_ns()
                if not ok:
                    silent = time.monotonic() - last_frame
                    if silent > self.cfg.silence_restart_s:
                        if not self._restart(f"no frames for {silent:.1f} s"):
                            return
                        last_frame = time.monotonic()
                    continue
                if self.align is not None:
                    fs = self.align.process(fs)
                color = fs.get_color_frame()
                depth = fs.get_depth_frame() if self.cam.enable_depth else None
                if not color or (self.cam.enable_depth and not depth):
                    continue  # incomplete set from the syncer
                if not pairer.accept(color, depth):
                    continue
                rgb, depth_m = frames_to_arrays(color, depth)
                last_frame = time.monotonic()
                self.buffer.put([CameraFrame(
                    serial, rgb, depth_m, self.intrinsics, self.T_world_camera, float(color.get_timestamp()),
                    recv_ns, int(color.get_frame_number()), domain_name(color.get_frame_timestamp_domain()),
                )])
        except Exception as exc:  # hand it to the reader
            self.buffer.fail(CameraError(f"camera {serial}: reader thread failed: {exc!r}"))
        finally:
            self.close()


class RealSenseSource(CameraSource):
    """Several RealSense cameras by serial, depth aligned to colour, RGB, one reader thread each.

    Each camera is asked for its configured ``color_format`` (``rgb8`` unless set otherwise); frames
    arrive as uint8 (H, W, 3) RGB whichever it is (``bgr8``, ``rgba8``, ``bgra8`` and ``yuyv`` are
    converted on this host).

    Args:
        config: cameras and behaviour.
        calibration: the setup's calibration; its intrinsics (at the stream's resolution) and
            ``T_world_camera`` are attached to frames. Every configured serial must be in it.
        max_frame_age_s, frame_timeout_s: see :class:`CameraSource`.
        context: a librealsense context (default: a new one).
        devices: serial -> device to use instead of searching the context (e.g. a
            :class:`SoftwareRealSense`'s ``device``).

    ``start()`` raises :class:`CameraNotFoundError` naming the first configured serial that is not
    connected. A camera that errors or stays silent for ``silence_restart_s`` is restarted; while it is
    down, ``read`` times out naming it.
    """

    def __init__(
        self,
        config: RealSenseConfig,
        calibration: SetupCalibration | None = None,
        *,
        max_frame_age_s: float = 0.1,
        frame_timeout_s: float = 1.0,
        context: rs.context | None = None,
        devices: Mapping[str, rs.device] | None = None,
    ) -> None:
        if not config.cameras:
            raise ValueError("RealSenseConfig.cameras is empty: name at least one camera by serial")
        serials = [c.serial for c in config.cameras]
        if any(not s for s in serials) or len(set(serials)) != len(serials):
            raise ValueError(f"camera serials must be non-empty and distinct, got {serials}")
        for c in config.cameras:
            check_color_format(c.color_format, f"camera {c.serial}")
        if calibration is not None:
            calibration.require(serials)
        super().__init__(serials, max_frame_age_s, frame_timeout_s)
        self.config = config
        self.calibration = calibration
        self._context = context or rs.context()
        self._devices = dict(devices or {})
        self._readers: list[_Reader] = []

    def intrinsics(self, serial: str):  # noqa: ANN201 - CameraIntrinsics
        for r in self._readers:
            if r.cam.serial == serial:
                return r.intrinsics
        raise CameraNotFoundError(f"no started camera with serial {serial!r}")

    def _start(self) -> None:
        readers = []
        try:
            for cam in self.config.cameras:
                r = _Reader(cam, self.config, self._buffer, self.calibration, self._context, self._devices.get(cam.serial))
                r.open()
                readers.append(r)
        except Exception:
            for r in readers:
                r.close()
            raise
        self._readers = readers
        for r in readers:
            r.start_thread()

    def _stop(self) -> None:
        for r in self._readers:
            r.stop_evt.set()
        for r in self._readers:
            if r.thread is not None:
                r.thread.join(timeout=2.0 + self.config.poll_timeout_s)
        self._readers = []


__all__ = ["DeviceInfo", "RealSenseSource", "list_devices"]
