"""Frames handed in by code (tests, the simulated workspace), with an optional test pattern."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np

from calibration import CameraIntrinsics

from ._config import SyntheticConfig
from ._source import CameraSource
from ._types import CameraFrame, FrameSet


class SyntheticSource(CameraSource):
    """A camera source fed by :meth:`push`; or, with ``pattern_fps_hz > 0``, by a test-pattern thread.

    Args:
        config: serials and test-pattern settings.
        max_frame_age_s, frame_timeout_s: see :class:`CameraSource`.
        intrinsics: per-serial intrinsics of the test pattern (default: 60 deg horizontal field of view).
    """

    def __init__(
        self,
        config: SyntheticConfig | None = None,
        *,
        max_frame_age_s: float = 0.1,
        frame_timeout_s: float = 1.0,
        intrinsics: Mapping[str, CameraIntrinsics] | None = None,
    ) -> None:
        self.config = config or SyntheticConfig()
        if not self.config.serials:
            raise ValueError("a synthetic source needs at least one serial")
        super().__init__(self.config.serials, max_frame_age_s, frame_timeout_s)
        w, h = self.config.width_px, self.config.height_px
        f = 0.5 * w / np.tan(np.radians(30.0))
        default = CameraIntrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h)
        self._intrinsics = {s: (intrinsics or {}).get(s, default) for s in self.config.serials}
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()

    def intrinsics(self, serial: str) -> CameraIntrinsics:
        return self._intrinsics[serial]

    def push(self, frames: FrameSet | Mapping[str, CameraFrame] | Iterable[CameraFrame]) -> None:
        """Hand in frames (any subset of the cameras); unknown serials raise ValueError."""
        if isinstance(frames, Mapping):
            items = list(frames.values())
        else:
            items = list(frames)
        for f in items:
            if f.serial not in self._buffer.expected:
                raise ValueError(f"unknown serial {f.serial!r}; this source has {list(self._buffer.expected)}")
        self._buffer.put(items)

    def make_pattern_frames(self, index: int, host_time_ns: int | None = None) -> list[CameraFrame]:
        """The test pattern's frames number ``index``: a moving gradient and a tilted depth plane."""
        now = time.monotonic_ns() if host_time_ns is None else host_time_ns
        out = []
        for k, s in enumerate(self.config.serials):
            intr = self._intrinsics[s]
            w, h = intr.width, intr.height
            x = (np.arange(w, dtype=np.uint16) + 4 * index + 40 * k) % 256
            rgb = np.empty((h, w, 3), np.uint8)
            rgb[:, :, 0] = x[None, :]
            rgb[:, :, 1] = (np.arange(h, dtype=np.uint16) % 256)[:, None]
            rgb[:, :, 2] = (index * 3) % 256
            depth = np.broadcast_to(
                (0.8 + 0.4 * np.arange(h, dtype=np.float32) / h)[:, None], (h, w)
            ).astype(np.float32)
            out.append(CameraFrame(s, rgb, depth, intr, None, now / 1e6, now, index, "system_time"))
        return out

    def _run_pattern(self) -> None:
        period = 1.0 / self.config.pattern_fps_hz
        t_next = time.monotonic()
        i = 0
        while not self._stop_evt.is_set():
            self._buffer.put(self.make_pattern_frames(i))
            i += 1
            t_next += period
            self._stop_evt.wait(max(0.0, t_next - time.monotonic()))

    def _start(self) -> None:
        if self.config.pattern_fps_hz > 0:
            self._stop_evt.clear()
            self._thread = threading.Thread(target=self._run_pattern, name="camera-pattern", daemon=True)
            self._thread.start()

    def _stop(self) -> None:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
