"""`realsim cameras` end to end: serve (test pattern) to a subscriber; play a librealsense recording."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from launch.cli import main
from twin.cameras import FrameTimeoutError, StreamConfig, StreamSource


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_test_pattern_reaches_a_subscriber(capsys):
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
