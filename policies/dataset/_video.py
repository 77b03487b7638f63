"""MP4 (H.264, yuv420p) encoding and decoding of RGB frame stacks through PyAV.

Frame ``i`` of a file has presentation time ``i / fps`` [s]: the ``timestamp`` column of the episode's
frames (LeRobot's convention, with ``from_timestamp`` = 0 since every episode has its own file).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["encode_video", "decode_video"]


def encode_video(frames: np.ndarray, path: str | Path, fps: float, crf: int = 18, preset: str = "veryfast",
                 fmt: str = "mp4") -> None:
    """Write ``frames`` uint8 [T, H, W, 3] RGB (H, W even) to ``path`` as H.264 at ``fps`` [Hz].

    ``fmt`` is given explicitly so that temporary names without the .mp4 suffix still get an MP4.
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    T, H, W, _ = frames.shape
    if H % 2 or W % 2:
        raise ValueError(f"H.264 with yuv420p needs even frame sizes, got {H}x{W}")
    rate = Fraction(int(round(fps)), 1)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = Fraction(1, int(round(fps)))
        stream.options = {"crf": str(crf), "preset": preset, "g": "10"}
        for i in range(T):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_video(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """All frames of ``path``: (uint8 [T, H, W, 3] RGB, presentation timestamps [T] [s])."""
    import av

    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    if not frames:
        raise ValueError(f"{path} holds no video frames")
    return np.stack(frames), np.asarray(times)
