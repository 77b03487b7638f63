"""Looking at frame sets: a rerun recording (``.rrd``) and an OpenCV window.

Both take :class:`FrameSet` as every source yields it: colour uint8 (H, W, 3) RGB, depth float32
(H, W) [m] aligned to colour.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

import numpy as np

from ._errors import CameraError
from ._types import FrameSet


class RerunRecorder:
    """Writes frame sets to a rerun recording file.

    Per camera (``<serial>``): ``cameras/<serial>`` holds the colour intrinsics as a pinhole (OpenCV
    axes: x right, y down, z forward) and, when calibrated, ``T_world_camera``; ``cameras/<serial>/rgb``
    the colour image (RGB), ``cameras/<serial>/depth`` the depth image [m] (0: unknown). Timelines:
    ``frame_set`` (the set's sequence number) and ``device_time`` (the frame's device timestamp).

    Args:
        path: the ``.rrd`` file to write (its folder is created).
        application_id: rerun's application id of the recording.
    """

    def __init__(self, path: str | Path, application_id: str = "realsim-cameras") -> None:
        import rerun as rr

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rr = rr
        self._rec = rr.RecordingStream(application_id)
        self._rec.save(str(self.path))
        self._static_logged: set[str] = set()
        self.sets_logged = 0

    def log(self, frames: FrameSet) -> None:
        """Append one frame set."""
        rr, rec = self._rr, self._rec
        rec.set_time("frame_set", sequence=int(frames.sequence))
        for serial, f in frames.items():
            base = f"cameras/{serial}"
            if serial not in self._static_logged:
                k = f.intrinsics
                rec.log(base, rr.Pinhole(focal_length=[k.fx, k.fy], principal_point=[k.cx, k.cy], width=k.width,
                                         height=k.height, camera_xyz=rr.ViewCoordinates.RDF), static=True)
                if f.T_world_camera is not None:
                    T = f.T_world_camera
                    rec.log(base, rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=True)
                self._static_logged.add(serial)
            rec.set_time("device_time", duration=f.device_time_ms / 1000.0)
            rec.log(f"{base}/rgb", rr.Image(f.rgb))
            if f.depth_m is not None:
                rec.log(f"{base}/depth", rr.DepthImage(f.depth_m, meter=1.0))
        self.sets_logged += 1

    def close(self) -> None:
        """Flush everything to the file and close it."""
        self._rec.flush()
        self._rec.disconnect()

    def __enter__(self) -> RerunRecorder:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def depth_to_bgr(depth_m: np.ndarray, depth_max_m: float) -> np.ndarray:
    """A colour-mapped view of depth [m] (float (H, W)): uint8 (H, W, 3) in OpenCV's BGR order, near
    blue to far red over 0..``depth_max_m``, black where the depth is unknown (0)."""
    import cv2

    scaled = np.clip(np.asarray(depth_m, np.float32) / np.float32(depth_max_m) * 255.0, 0, 255).astype(np.uint8)
    out = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
    out[~(depth_m > 0)] = 0
    return out


class FrameWindow:
    """One OpenCV window per camera showing colour beside depth.

    Raises :class:`CameraError` when no window can be opened: no display (on Linux neither
    ``DISPLAY`` nor ``WAYLAND_DISPLAY`` is set) or an OpenCV built without window support
    (``opencv-python-headless``).

    Args:
        title: prefix of the window titles (followed by the camera's serial).
        depth_max_m: depth shown at the far end of the colour map [m].
    """

    def __init__(self, title: str = "realsim cameras", depth_max_m: float = 3.0) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise CameraError("cannot show frames: no display (DISPLAY is not set); write a rerun recording "
                              "with --rrd OUT.rrd instead")
        import cv2

        self._cv2 = cv2
        self.title, self.depth_max_m = title, float(depth_max_m)
        self._windows: list[str] = []
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise CameraError("cannot show frames: this OpenCV has no window support (opencv-python-headless); "
                              "write a rerun recording with --rrd OUT.rrd instead") from exc
        cv2.destroyWindow(title)

    def show(self, frames: FrameSet) -> bool:
        """Draw a frame set; False once the user pressed ``q`` or Esc or closed a window."""
        cv2 = self._cv2
        for serial, f in frames.items():
            name = f"{self.title} {serial}"
            if name not in self._windows:
                cv2.namedWindow(name, cv2.WINDOW_NORMAL)
                self._windows.append(name)
            elif cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) < 1:
                return False
            view = cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)
            if f.depth_m is not None:
                view = np.hstack([view, depth_to_bgr(f.depth_m, self.depth_max_m)])
            cv2.imshow(name, view)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        for name in self._windows:
            try:
                self._cv2.destroyWindow(name)
            except self._cv2.error:
                pass
        self._windows = []

    def __enter__(self) -> FrameWindow:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


__all__ = ["FrameWindow", "RerunRecorder", "depth_to_bgr"]
