"""The camera-source interface through the synthetic source; configs; light imports."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from calibration import CameraIntrinsics
from launch.config import load_config
from twin.cameras import (
    CameraFrame,
    CameraSourceConfig,
    FrameTimeoutError,
    SourceClosedError,
    StaleFrameError,
    SyntheticConfig,
    SyntheticSource,
    make_source,
)

INTR = CameraIntrinsics(50.0, 50.0, 15.5, 11.5, 32, 24)


def _frame(serial: str, n: int, age_s: float = 0.0) -> CameraFrame:
    t = time.monotonic_ns() - int(age_s * 1e9)
    return CameraFrame(serial, np.full((24, 32, 3), n, np.uint8), np.ones((24, 32), np.float32), INTR, None, float(n), t, n)


def test_frame_set_waits_for_every_camera_and_keeps_the_newest():
    src = SyntheticSource(SyntheticConfig(serials=("a", "b")), max_frame_age_s=1.0, frame_timeout_s=0.2)
    with pytest.raises(SourceClosedError):
        src.read()
    with src:
        src.push([_frame("a", 1), _frame("a", 2)])
        assert src.poll() is None  # b has not delivered
        with pytest.raises(FrameTimeoutError, match=r"b \(never delivered\)"):
            src.read(timeout_s=0.05)
        src.push([_frame("b", 3)])
        fs = src.read()
        assert fs["a"].frame_number == 2 and fs["b"].frame_number == 3 and fs.sequence == 1
        assert src.stats().frames_dropped == {"a": 1, "b": 0}
        with pytest.raises(ValueError, match="unknown serial"):
            src.push([_frame("zzz", 1)])


def test_stale_frames_are_never_silently_used():
    with SyntheticSource(SyntheticConfig(serials=("a",)), max_frame_age_s=0.05) as src:
        src.push([_frame("a", 1, age_s=0.2)])
        with pytest.raises(StaleFrameError, match=r"a \(\d+ ms old\)"):
            src.read()
        src.push([_frame("a", 2, age_s=0.2)])
        assert src.read(allow_stale=True).stale == ("a",)
        assert src.stats().stale_sets == 2


def test_frame_validation():
    with pytest.raises(ValueError, match="uint8"):
        CameraFrame("a", np.zeros((24, 32, 3), np.float32), None, INTR, None, 0.0, 0)
    with pytest.raises(ValueError, match="does not match intrinsics"):
        CameraFrame("a", np.zeros((10, 32, 3), np.uint8), None, INTR, None, 0.0, 0)
    with pytest.raises(ValueError, match="float32"):
        CameraFrame("a", np.zeros((24, 32, 3), np.uint8), np.zeros((24, 32)), INTR, None, 0.0, 0)


def test_pattern_source_from_yaml_config(tmp_path):
    cfg_file = tmp_path / "cams.yaml"
    cfg_file.write_text("kind: synthetic\nmax_frame_age_s: 0.5\nsynthetic:\n  serials: [s0, s1]\n  pattern_fps_hz: 50\n")
    cfg = load_config(CameraSourceConfig, cfg_file, ["synthetic.width_px=64", "synthetic.height_px=48"])
    with make_source(cfg) as src:
        a = src.read(timeout_s=1.0)
        b = src.read(timeout_s=1.0)
    assert a.serials == ("s0", "s1") and a["s0"].rgb.shape == (48, 64, 3)
    assert b["s0"].frame_number > a["s0"].frame_number
    assert a["s0"].depth_m.dtype == np.float32


def test_import_is_light():
    code = (
        "import sys, twin.cameras, calibration; "
        "bad = [m for m in ('pyrealsense2', 'zmq', 'cv2') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_exported_name_resolves():
    import calibration
    import twin.cameras

    for mod in (calibration, twin.cameras):
        missing = [n for n in mod.__all__ if getattr(mod, n, None) is None]
        assert not missing, (mod.__name__, missing)
