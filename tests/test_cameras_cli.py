"""`realsim cameras` end to end: serve (test pattern) to a subscriber; play a librealsense recording."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from launch.cli import build_parser, main
from twin.cameras import FrameTimeoutError, StreamConfig, StreamSource


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_test_pattern_reaches_a_subscriber(capsys):
    build_parser()  # the command line's modules load before the clock starts (some import torch)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    rc: list[int] = []
    th = threading.Thread(target=lambda: rc.append(main(["cameras", "serve", "--endpoint", endpoint, "--duration-s", "2.5",
                                                          "--set", "source.synthetic.width_px=64",
                                                          "--set", "source.synthetic.height_px=48"])))
    th.start()
    try:
        with StreamSource(StreamConfig(endpoint=endpoint), max_frame_age_s=0.5) as src:
            deadline = time.monotonic() + 2.0
            fs = None
            while fs is None and time.monotonic() < deadline:
                try:
                    fs = src.read(timeout_s=0.2)
                except FrameTimeoutError:
                    pass
    finally:
        th.join(timeout=10)
    assert rc == [0]
    assert fs is not None and fs.serials == ("synthetic0",) and fs["synthetic0"].rgb.shape == (48, 64, 3)
    assert "serving the synthetic source" in capsys.readouterr().out


def test_play_a_recording(tmp_path, capsys):
    pytest.importorskip("pyrealsense2")
    from calibration import CameraIntrinsics
    from twin.cameras import RealSenseCameraConfig, RealSenseConfig, RealSenseSource, SoftwareRealSense

    intr = CameraIntrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
    path = tmp_path / "r.db3"
    cam = SoftwareRealSense("PLAY1", intr)
    cfg = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="PLAY1", width_px=64, height_px=48, record_path=str(path)),))
    with RealSenseSource(cfg, devices={"PLAY1": cam.device}, max_frame_age_s=1.0) as src:
        for n in range(6):
            cam.push(np.full((48, 64, 3), n, np.uint8), np.full((48, 64), 0.8, np.float32), 100.0 + 33.3 * n)
            src.read(timeout_s=2.0)
    assert main(["cameras", "play", str(path), "--fast"]) == 0
    out = capsys.readouterr().out
    assert "cameras ['PLAY1']" in out and "end of recording after 6 frame sets" in out
    assert main(["cameras", "play", str(tmp_path / "missing.db3")]) == 1
    assert "missing.db3 does not exist" in capsys.readouterr().err


def _record_bgr(path, n_frames: int = 5) -> list[np.ndarray]:
    """A BGR8 recording (as librealsense tools make them) of ``n_frames`` frames; returns their RGB."""
    from calibration import CameraIntrinsics
    from twin.cameras import RealSenseCameraConfig, RealSenseConfig, RealSenseSource, SoftwareRealSense

    intr = CameraIntrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
    cam = SoftwareRealSense("PLAY2", intr, color_format="bgr8")
    cfg = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="PLAY2", width_px=64, height_px=48, record_path=str(path),
                                                         color_format="bgr8"),))
    y, x = np.mgrid[0:48, 0:64]
    images = [np.stack([x * 3 + n, y * 5, 255 - x - y], axis=-1).astype(np.uint8) for n in range(n_frames)]
    with RealSenseSource(cfg, devices={"PLAY2": cam.device}, max_frame_age_s=1.0) as src:
        for n, rgb in enumerate(images):
            cam.push(rgb, np.full((48, 64), 0.5 + 0.1 * n, np.float32), 100.0 + 33.3 * n)
            src.read(timeout_s=2.0)
            time.sleep(0.03)
    return images


def test_play_writes_a_rerun_recording_of_colour_and_depth(tmp_path, capsys):
    pytest.importorskip("pyrealsense2")
    rr_chunk = pytest.importorskip("rerun.chunk")
    path, out = tmp_path / "bgr.db3", tmp_path / "view" / "play.rrd"
    images = _record_bgr(path)
    assert main(["cameras", "play", str(path), "--fast", "--rrd", str(out)]) == 0
    assert f"wrote 5 frame sets to {out}" in capsys.readouterr().out
    assert out.stat().st_size > 5 * 64 * 48 * 3  # at least the colour pixels
    store = rr_chunk.RrdReader(out).store().stream().collect()
    logged: dict[str, list[tuple[int, list]]] = {}  # entity -> (frame set, image buffer)
    for chunk in store.stream():
        rb = chunk.to_record_batch()
        for col in ("Image:buffer", "DepthImage:buffer"):
            if col in rb.schema.names:
                seq, bufs = rb.column("frame_set").to_pylist(), rb.column(col).to_pylist()
                logged.setdefault(chunk.entity_path, []).extend((s, b[0]) for s, b in zip(seq, bufs))
    rows = {entity: [b for _, b in sorted(v, key=lambda r: r[0])] for entity, v in logged.items()}
    assert set(rows) == {"/cameras/PLAY2/rgb", "/cameras/PLAY2/depth"}
    assert len(rows["/cameras/PLAY2/rgb"]) == 5 and len(rows["/cameras/PLAY2/depth"]) == 5
    for n, buf in enumerate(rows["/cameras/PLAY2/rgb"]):  # the BGR8 recording's pixels, logged as RGB
        np.testing.assert_array_equal(np.array(buf, np.uint8).reshape(48, 64, 3), images[n])
    depth = np.frombuffer(bytes(rows["/cameras/PLAY2/depth"][-1]), np.float32).reshape(48, 64)
    assert np.median(depth[depth > 0]) == pytest.approx(0.9, abs=2e-3)  # metres


def test_play_show_without_a_window_is_a_clear_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pyrealsense2")
    import re
    import sys

    import cv2

    path = tmp_path / "bgr.db3"
    _record_bgr(path, n_frames=2)
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert main(["cameras", "play", str(path), "--fast", "--show"]) == 1
        err = capsys.readouterr().err
        assert "no display (DISPLAY is not set)" in err and "--rrd" in err
    if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):  # opencv-python-headless
        monkeypatch.setenv("DISPLAY", ":0")
        assert main(["cameras", "play", str(path), "--fast", "--show"]) == 1
        assert "OpenCV has no window support" in capsys.readouterr().err
