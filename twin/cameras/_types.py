"""Frames and frame sets: what every camera source yields."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping

import numpy as np

from calibration import CameraIntrinsics


@dataclasses.dataclass(frozen=True, eq=False)
class CameraFrame:
    """One RGB-D frame of one camera.

    Attributes:
        serial: the camera's serial number.
        rgb: colour image, uint8 (H, W, 3), RGB order. May be a read-only view.
        depth_m: depth aligned to the colour image [m], float32 (H, W); 0 where unknown. None for a
            colour-only camera.
        intrinsics: intrinsics of the colour image (the depth is aligned to it).
        T_world_camera: camera pose in the world (robot base) frame, 4x4 float64 [m], OpenCV camera
            axes; None when the setup's calibration has no extrinsics for this serial.
        device_time_ms: the device's timestamp of the frame [ms] (clock named by ``time_domain``).
        host_time_ns: ``time.monotonic_ns()`` of this host when the frame was received from the
            camera (for frames that came over the network: the capture host's receive time mapped onto
            this host's clock by subtracting the frame's age at sending).
        frame_number: the device's frame counter.
        time_domain: ``"hardware_clock"``, ``"system_time"``, ``"global_time"`` or ``""``.
    """

    serial: str
    rgb: np.ndarray
    depth_m: np.ndarray | None
    intrinsics: CameraIntrinsics
    T_world_camera: np.ndarray | None
    device_time_ms: float
    host_time_ns: int
    frame_number: int = 0
    time_domain: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rgb, np.ndarray) or self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"camera {self.serial}: rgb must be uint8 (H, W, 3)")
        h, w = self.rgb.shape[:2]
        if (w, h) != (self.intrinsics.width, self.intrinsics.height):
            raise ValueError(
                f"camera {self.serial}: image {w}x{h} does not match intrinsics {self.intrinsics.width}x{self.intrinsics.height}"
            )
        if self.depth_m is not None:
            if not isinstance(self.depth_m, np.ndarray) or self.depth_m.dtype != np.float32 or self.depth_m.shape != (h, w):
                raise ValueError(f"camera {self.serial}: depth_m must be float32 ({h}, {w})")
        if self.T_world_camera is not None:
            T = np.asarray(self.T_world_camera, dtype=np.float64)
            if T.shape != (4, 4):
                raise ValueError(f"camera {self.serial}: T_world_camera must be 4x4")
            object.__setattr__(self, "T_world_camera", T)

    def age_s(self, now_ns: int | None = None) -> float:
        """Seconds since ``host_time_ns`` (monotonic clock)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return (now - self.host_time_ns) / 1e9


@dataclasses.dataclass(frozen=True, eq=False)
class FrameSet(Mapping[str, CameraFrame]):
    """The newest frame of each camera of a source, as a read-only mapping serial -> frame.

    Attributes:
        frames: serial -> :class:`CameraFrame`, in the source's camera order.
        sequence: the source's count of frame sets handed out (starts at 1).
        received_ns: ``time.monotonic_ns()`` when the newest frame of the set arrived.
        stale: serials whose frame was older than the source's maximum age when the set was read
            (empty unless the reader asked for stale sets).
    """

    frames: Mapping[str, CameraFrame]
    sequence: int = 0
    received_ns: int = 0
    stale: tuple[str, ...] = ()

    def __getitem__(self, serial: str) -> CameraFrame:
        return self.frames[serial]

    def __iter__(self) -> Iterator[str]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(self.frames)

    def oldest_host_time_ns(self) -> int:
        return min(f.host_time_ns for f in self.frames.values())

    def max_age_s(self, now_ns: int | None = None) -> float:
        """Age of the oldest frame [s]."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return (now - self.oldest_host_time_ns()) / 1e9

    def host_skew_ms(self) -> float:
        """Spread of the frames' host receive times [ms] (how far apart the cameras' frames are)."""
        t = [f.host_time_ns for f in self.frames.values()]
        return (max(t) - min(t)) / 1e6


@dataclasses.dataclass(frozen=True)
class SourceStats:
    """Counters of a camera source.

    Attributes:
        frames_received: serial -> frames received from the camera.
        frames_dropped: serial -> frames overwritten by a newer one before being read.
        sets_read: frame sets handed out.
        stale_sets: reads that found a frame older than the maximum age.
        reconnects: serial -> restarts of the camera after it failed or fell silent.
        malformed_messages: stream messages rejected (stream source only).
        last_error: text of the most recent error a background thread reported, or ``""``.
    """

    frames_received: dict[str, int]
    frames_dropped: dict[str, int]
    sets_read: int
    stale_sets: int
    reconnects: dict[str, int]
    malformed_messages: int = 0
    last_error: str = ""


__all__ = ["CameraFrame", "FrameSet", "SourceStats"]
