"""The camera-source interface and its latest-frame buffer (one slot per camera)."""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterable, Mapping

from ._errors import FrameTimeoutError, SourceClosedError, StaleFrameError
from ._types import CameraFrame, FrameSet, SourceStats


class _LatestBuffer:
    """Latest-frame slots, one per camera, guarded by a condition variable.

    Bounded by construction: a new frame overwrites the unread one (counted as dropped). A set is
    ready when every expected camera delivered a frame since the last read. Background threads hand
    fatal errors to the reader through :meth:`fail`.
    """

    def __init__(self, serials: Iterable[str]) -> None:
        self.expected: tuple[str, ...] = tuple(serials)
        self._cond = threading.Condition()
        self._latest: dict[str, CameraFrame] = {}
        self._fresh: set[str] = set()
        self._received: dict[str, int] = {s: 0 for s in self.expected}
        self._dropped: dict[str, int] = {s: 0 for s in self.expected}
        self._reconnects: dict[str, int] = {s: 0 for s in self.expected}
        self._last_arrival_ns: dict[str, int] = {}
        self._received_ns = 0
        self._error: BaseException | None = None
        self._end: BaseException | None = None
        self.last_error = ""
        self.sets_read = 0
        self.stale_sets = 0
        self.malformed = 0
        self._closed = False
        self._consumed = threading.Event()
        self._consumed.set()

    # -- producers -------------------------------------------------------------------------------
    def put(self, frames: Iterable[CameraFrame], replace_set: bool = False) -> None:
        now = time.monotonic_ns()
        with self._cond:
            if replace_set:
                for s in self._fresh:
                    self._dropped[s] = self._dropped.get(s, 0) + 1
                self._latest = {}
                self._fresh = set()
            for f in frames:
                s = f.serial
                if s in self._fresh and not replace_set:
                    self._dropped[s] = self._dropped.get(s, 0) + 1
                self._latest[s] = f
                self._fresh.add(s)
                self._received[s] = self._received.get(s, 0) + 1
                self._last_arrival_ns[s] = now
            self._received_ns = now
            self._consumed.clear()
            self._cond.notify_all()

    def wait_consumed(self, timeout_s: float) -> bool:
        """Block a producer until the last frames were read (as-fast-as-possible playback)."""
        return self._consumed.wait(timeout_s)

    def note_error(self, text: str) -> None:
        with self._cond:
            self.last_error = text

    def note_reconnect(self, serial: str) -> None:
        with self._cond:
            self._reconnects[serial] = self._reconnects.get(serial, 0) + 1

    def note_stale(self) -> None:
        with self._cond:
            self.stale_sets += 1

    def note_malformed(self, text: str) -> None:
        with self._cond:
            self.malformed += 1
            self.last_error = text

    def fail(self, exc: BaseException) -> None:
        """A background thread hit an unrecoverable error: the next read raises it."""
        with self._cond:
            self._error = exc
            self.last_error = str(exc)
            self._cond.notify_all()

    def end(self, exc: BaseException) -> None:
        """No more frames will come (end of a recording): raised once the buffer is drained."""
        with self._cond:
            self._end = exc
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._consumed.set()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._error = None
            self._end = None

    # -- consumer --------------------------------------------------------------------------------
    def _ready(self) -> bool:
        want = self.expected or tuple(self._latest)
        return bool(want) and all(s in self._fresh for s in want)

    def take(self, timeout_s: float, block: bool = True) -> tuple[dict[str, CameraFrame], int] | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._closed:
                    raise SourceClosedError("the camera source is stopped")
                if self._ready():
                    break
                if self._end is not None:
                    raise self._end
                if not block:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = tuple(s for s in (self.expected or tuple(self._latest)) if s not in self._fresh)
                    now = time.monotonic_ns()
                    parts = []
                    for s in missing or self.expected:
                        last = self._last_arrival_ns.get(s)
                        parts.append(f"{s} (" + ("never delivered" if last is None else f"last frame {(now - last) / 1e9:.2f} s ago") + ")")
                    what = ", ".join(parts) if parts else "no camera has delivered yet"
                    hint = f"; last error: {self.last_error}" if self.last_error else ""
                    raise FrameTimeoutError(
                        f"no complete frame set within {timeout_s:.3f} s; waiting on camera(s): {what}{hint}",
                        missing,
                    )
                self._cond.wait(left)
            want = self.expected or tuple(self._latest)
            frames = {s: self._latest[s] for s in want}
            self._fresh.difference_update(want)
            self.sets_read += 1
            self._consumed.set()
            return frames, self._received_ns

    def stats(self) -> SourceStats:
        with self._cond:
            return SourceStats(
                dict(self._received), dict(self._dropped), self.sets_read, self.stale_sets,
                dict(self._reconnects), self.malformed, self.last_error,
            )


class CameraSource(abc.ABC):
    """A source of synchronized RGB-D frame sets with latest-frame semantics.

    ``read()`` returns the newest frame of every camera once each has delivered a frame since the
    previous read; older unread frames are dropped (see :meth:`stats`). A frame older than
    ``max_frame_age_s`` is never silently used: ``read`` raises :class:`StaleFrameError` naming the
    camera (or, with ``allow_stale=True``, lists it in ``FrameSet.stale``).

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, serials: Iterable[str], max_frame_age_s: float, frame_timeout_s: float) -> None:
        if max_frame_age_s <= 0:
            raise ValueError("max_frame_age_s must be positive")
        if frame_timeout_s <= 0:
            raise ValueError("frame_timeout_s must be positive")
        self.max_frame_age_s = float(max_frame_age_s)
        self.frame_timeout_s = float(frame_timeout_s)
        self._buffer = _LatestBuffer(serials)
        self._started = False
        self._lock = threading.Lock()

    @property
    def serials(self) -> tuple[str, ...]:
        """Serials of the cameras (for a stream source with none configured: those seen so far)."""
        return self._buffer.expected

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> CameraSource:
        with self._lock:
            if not self._started:
                self._buffer.reopen()
                self._start()
                self._started = True
        return self

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._started = False
                self._buffer.close()
                self._stop()

    def __enter__(self) -> CameraSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def read(self, timeout_s: float | None = None, allow_stale: bool = False) -> FrameSet:
        """The newest complete frame set.

        Args:
            timeout_s: longest wait [s] (default ``frame_timeout_s``).
            allow_stale: return stale sets (with ``FrameSet.stale`` listing the stale cameras)
                instead of raising.

        Raises:
            FrameTimeoutError: no complete set in time; names the silent cameras.
            StaleFrameError: a frame is older than ``max_frame_age_s``; names the camera and age.
            SourceClosedError: the source is not started.
            CameraError: an error a background thread handed over (e.g. a camera that vanished).
        """
        if not self._started:
            raise SourceClosedError("the camera source is not started; call start() or use it as a context manager")
        frames, received_ns = self._buffer.take(self.frame_timeout_s if timeout_s is None else timeout_s)
        return self._finish(frames, received_ns, allow_stale)

    def poll(self, allow_stale: bool = False) -> FrameSet | None:
        """A new complete frame set if one is ready, else None (never blocks)."""
        if not self._started:
            raise SourceClosedError("the camera source is not started")
        got = self._buffer.take(0.0, block=False)
        return None if got is None else self._finish(*got, allow_stale)

    def _finish(self, frames: Mapping[str, CameraFrame], received_ns: int, allow_stale: bool) -> FrameSet:
        now = time.monotonic_ns()
        ages = {s: f.age_s(now) for s, f in frames.items()}
        stale = {s: a for s, a in ages.items() if a > self.max_frame_age_s}
        if stale:
            self._buffer.note_stale()
            if not allow_stale:
                desc = ", ".join(f"{s} ({a * 1000:.0f} ms old)" for s, a in stale.items())
                raise StaleFrameError(
                    f"stale frame(s), older than {self.max_frame_age_s * 1000:.0f} ms: {desc}", stale
                )
        return FrameSet(dict(frames), self._buffer.sets_read, received_ns, tuple(stale))

    def stats(self) -> SourceStats:
        return self._buffer.stats()

    @abc.abstractmethod
    def _start(self) -> None:
        """Open devices/sockets and start background threads."""

    @abc.abstractmethod
    def _stop(self) -> None:
        """Stop background threads (joined with a timeout) and release devices/sockets."""


__all__ = ["CameraSource"]
