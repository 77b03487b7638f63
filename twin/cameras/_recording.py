"""Playback of librealsense recordings (``.db3``; ``.bag`` from older versions), one file per camera.

Colour recorded as ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``yuyv`` is handed out as uint8
(H, W, 3) RGB; a recording in any other colour format is refused when the source starts, with a
:class:`ColorFormatError` naming the format and the supported ones.

The playback device's sensors are read directly (not through ``rs.pipeline``, whose syncer may lose
the first frames of a file): colour and depth frames are paired by device timestamp, joined into a
librealsense frameset and aligned with ``rs.align``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import threading
import time
from pathlib import Path

import pyrealsense2 as rs

from calibration import SetupCalibration

from ._calib import calibrated
from ._color_formats import check_color_format
from ._config import RecordingConfig
from ._errors import CameraError, CameraNotFoundError, EndOfRecordingError
from ._rsutil import color_format_name, domain_name, frames_to_arrays, intrinsics_from_rs
from ._source import CameraSource, _LatestBuffer
from ._types import CameraFrame

RECORDING_SUFFIXES = (".db3", ".bag")
_MAX_PENDING = 8  # unpaired frames kept per stream
_PAUSE_AT = 4  # pairs waiting for the reader before playback pauses (as fast as possible)
_RESUME_AT = 1
_MAX_READY = 64  # decoded frames held ahead of the reader (bounded; overflow is counted)


class _Player:
    """One recording: playback device, sensor callbacks, pairing and alignment."""

    def __init__(
        self,
        path: Path,
        cfg: RecordingConfig,
        calibration: SetupCalibration | None,
        buffer: _LatestBuffer,
        stop_evt: threading.Event,
    ) -> None:
        self.path, self.cfg, self.buffer, self.stop_evt = path, cfg, buffer, stop_evt
        self.ctx = rs.context()
        try:
            self.device = self.ctx.load_device(str(path))
        except RuntimeError as exc:
            raise CameraError(f"cannot open recording {path}: {exc}") from exc
        self.playback = self.device.as_playback()
        self.playback.set_real_time(bool(cfg.real_time))
        dev = self.device
        self.serial = dev.get_info(rs.camera_info.serial_number) if dev.supports(rs.camera_info.serial_number) else path.stem
        self.sensors: list[tuple[rs.sensor, list]] = []
        color_profile = None
        self.has_depth = False
        for s in dev.query_sensors():
            profiles = [p for p in s.get_stream_profiles() if p.stream_type() in (rs.stream.color, rs.stream.depth)]
            if not profiles:
                continue
            for p in profiles:
                if p.stream_type() == rs.stream.color:
                    color_profile = p.as_video_stream_profile()
                else:
                    self.has_depth = True
            self.sensors.append((s, profiles))
        if color_profile is None:
            raise CameraError(f"recording {path} has no colour stream")
        # Colour is converted to RGB from whichever supported format was recorded.
        self.color_format = check_color_format(color_format_name(color_profile.format()), f"recording {path}")
        self.intrinsics, self.T_world_camera = calibrated(calibration, self.serial, intrinsics_from_rs(color_profile.get_intrinsics()))
        tol = cfg.sync_tolerance_ms
        self.tolerance_ms = 0.5 * 1000.0 / max(1, color_profile.fps()) if tol is None else float(tol)
        self.duration_s = self.playback.get_duration().total_seconds()
        self.align = rs.align(rs.stream.color) if (self.has_depth and cfg.align_depth_to_color) else None
        self._lock = threading.Lock()
        self._pending: dict[rs.stream, list[rs.frame]] = {rs.stream.color: [], rs.stream.depth: []}
        self._pair: list[rs.frame] = []
        self._queue = rs.frame_queue(2, True)
        self._joiner = rs.processing_block(lambda f, src: src.frame_ready(src.allocate_composite_frame(self._pair)))
        self._joiner.start(self._queue)
        self.frames_seen = 0
        self.ready: collections.deque = collections.deque(maxlen=_MAX_READY)
        self._have_frame = threading.Condition(self._lock)
        self.overflow = 0
        self.paused = False
        self.reader: threading.Thread | None = None
        self.monitor: threading.Thread | None = None
        self.running = False

    # -- playback control ---------------------------------------------------------------------------
    def start(self) -> None:
        # Hold the file until every sensor listens, or the first frames of a stream are lost.
        self.playback.pause()
        for s, profiles in self.sensors:
            s.open(profiles)
            s.start(self._on_frame)
        self.running = True
        self.playback.resume()

    def stop_sensors(self) -> None:
        if not self.running:
            return
        self.running = False
        for s, _ in self.sensors:
            try:
                s.stop()
            except RuntimeError:
                pass
            try:
                s.close()
            except RuntimeError:
                pass

    def finished(self) -> bool:
        return self.playback.current_status() == rs.playback_status.stopped

    def rewind(self) -> None:
        self.stop_sensors()
        with self._lock:
            for v in self._pending.values():
                v.clear()
            self.ready.clear()
        self.playback.seek(_dt.timedelta(0))
        self.start()

    # -- frames ---------------------------------------------------------------------------------------
    def _on_frame(self, f: rs.frame) -> None:
        """librealsense's callback: pair colour and depth by timestamp, align, convert; never waits."""
        try:
            recv_ns = time.monotonic_ns()
            kind = f.get_profile().stream_type()
            if kind not in self._pending:
                return
            with self._lock:
                self.frames_seen += 1
                if not self.has_depth:
                    pair = (f, None)
                else:
                    other = self._pending[rs.stream.depth if kind == rs.stream.color else rs.stream.color]
                    t = f.get_timestamp()
                    match = min(other, key=lambda o: abs(o.get_timestamp() - t), default=None)
                    if match is None or abs(match.get_timestamp() - t) > self.tolerance_ms:
                        f.keep()
                        mine = self._pending[kind]
                        mine.append(f)
                        del mine[:-_MAX_PENDING]
                        return
                    other.remove(match)
                    # Frames of the other stream older than the match will never pair.
                    other[:] = [o for o in other if o.get_timestamp() > match.get_timestamp()]
                    pair = (f, match) if kind == rs.stream.color else (match, f)
                frame = self._convert(pair[0], pair[1], recv_ns)
                if self.cfg.real_time:
                    self.buffer.put([frame])
                else:
                    if len(self.ready) == self.ready.maxlen:
                        self.overflow += 1
                    self.ready.append(frame)
                    self._have_frame.notify()
        except Exception as exc:  # never raise into librealsense's thread
            self.buffer.fail(CameraError(f"recording {self.path}: playback failed: {exc!r}"))

    def _convert(self, color: rs.frame, depth: rs.frame | None, recv_ns: int) -> CameraFrame:
        if depth is not None and self.align is not None:
            self._pair = [depth, color]
            self._joiner.invoke(color)
            ok, joined = self._queue.try_wait_for_frame(1000)
            if not ok:
                raise CameraError("could not join colour and depth frames")
            fs = self.align.process(joined.as_frameset())
            color, depth = fs.get_color_frame(), fs.get_depth_frame()
        rgb, depth_m = frames_to_arrays(color.as_video_frame(), None if depth is None else depth.as_depth_frame())
        return CameraFrame(
            self.serial, rgb, depth_m, self.intrinsics, self.T_world_camera, float(color.get_timestamp()),
            recv_ns, int(color.get_frame_number()), domain_name(color.get_frame_timestamp_domain()),
        )

    def run(self) -> None:
        """As fast as possible: hand frames over one at a time, each once the previous one was read."""
        try:
            while not self.stop_evt.is_set():
                self._flow_control()
                with self._lock:
                    if not self.ready:
                        self._have_frame.wait(0.02)
                        continue
                    frame = self.ready.popleft()
                # Host time: when handed over (the frame was decoded ahead of the reader).
                frame = dataclasses.replace(frame, host_time_ns=time.monotonic_ns())
                self.buffer.put([frame])
                while not self.stop_evt.is_set() and not self.buffer.wait_consumed(0.02):
                    self._flow_control()
        except Exception as exc:
            self.buffer.fail(CameraError(f"recording {self.path}: playback failed: {exc!r}"))

    def _flow_control(self) -> None:
        """Pause the file while decoded frames wait for the reader, so nothing is dropped."""
        with self._lock:
            n = len(self.ready)
        if n >= _PAUSE_AT and not self.paused:
            self.playback.pause()
            self.paused = True
        elif n <= _RESUME_AT and self.paused:
            self.playback.resume()
            self.paused = False

    def idle(self) -> bool:
        with self._lock:
            return not self.ready


class RecordingSource(CameraSource):
    """Plays recordings of one or more cameras (one file per camera), colour as RGB whichever
    supported format (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``yuyv``) it was recorded in.

    In real time (``real_time=True``) frames arrive at the recorded rate with latest-frame semantics.
    Otherwise playback runs as fast as frames are read: each frame waits for the previous one to be
    read, so none is dropped. Colour and depth are paired by device timestamp. After the last frame,
    ``read`` raises :class:`EndOfRecordingError` (unless looping).
    """

    def __init__(
        self,
        config: RecordingConfig,
        calibration: SetupCalibration | None = None,
        *,
        max_frame_age_s: float = 0.1,
        frame_timeout_s: float = 1.0,
    ) -> None:
        if not config.paths:
            raise ValueError("RecordingConfig.paths is empty")
        for p in config.paths:
            path = Path(p)
            if not path.is_file():
                raise CameraNotFoundError(f"recording {path} does not exist")
            if path.suffix.lower() not in RECORDING_SUFFIXES:
                raise CameraError(f"recording {path}: expected one of {RECORDING_SUFFIXES}")
        super().__init__((), max_frame_age_s, frame_timeout_s)
        self.config = config
        self.calibration = calibration
        self._players: list[_Player] = []
        self._stop_evt = threading.Event()

    @property
    def duration_s(self) -> float:
        """Longest recording duration [s] (0 before start)."""
        return max((pl.duration_s for pl in self._players), default=0.0)

    def _start(self) -> None:
        self._stop_evt.clear()
        players = [_Player(Path(p), self.config, self.calibration, self._buffer, self._stop_evt) for p in self.config.paths]
        serials = [pl.serial for pl in players]
        if len(set(serials)) != len(serials):
            raise CameraError(f"recordings hold the same camera serial more than once: {serials}")
        if self.calibration is not None:
            self.calibration.require(serials)
        self._buffer.expected = tuple(serials)
        self._players = players
        for pl in players:
            if not self.config.real_time:
                pl.reader = threading.Thread(target=pl.run, name=f"recording-reader-{pl.serial}", daemon=True)
                pl.reader.start()
            pl.start()
            pl.monitor = threading.Thread(target=self._monitor, args=(pl,), name=f"recording-{pl.serial}", daemon=True)
            pl.monitor.start()

    def _monitor(self, pl: _Player) -> None:
        t_start = time.monotonic()
        while not self._stop_evt.wait(0.05):
            if pl.paused or not pl.finished() or not pl.idle() or (pl.frames_seen == 0 and time.monotonic() - t_start < 2.0):
                continue
            if self.config.loop:
                pl.rewind()
                continue
            self._buffer.end(EndOfRecordingError(f"recording {pl.path} (camera {pl.serial}) played to its end"))
            return

    def _stop(self) -> None:
        self._stop_evt.set()
        for pl in self._players:
            for th in (pl.monitor, pl.reader):
                if th is not None:
                    th.join(timeout=2.0)
            pl.stop_sensors()
        self._players = []


__all__ = ["RECORDING_SUFFIXES", "RecordingSource"]
