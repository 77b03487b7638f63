"""Record -> play round trip through librealsense (software device recorded to a .db3 file)."""

from __future__ import annotations

import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from calibration import CameraIntrinsics  # noqa: E402
from twin.cameras import (  # noqa: E402
    COLOR_FORMATS,
    CameraNotFoundError,
    EndOfRecordingError,
    RealSenseCameraConfig,
    RealSenseConfig,
    RealSenseSource,
    RecordingConfig,
    RecordingSource,
    SoftwareRealSense,
)

W, H = 96, 64
INTR = CameraIntrinsics(90.0, 90.0, 47.5, 31.5, W, H, "brown_conrady", (0.0, 0.0, 0.0, 0.0, 0.0))
N = 12
PERIOD_MS = 1000.0 / 30


def _frame(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    # A smooth surface in whole millimetres: alignment with identical intrinsics is then the identity.
    depth = ((500 + 10 * n + np.arange(W)[None, :] + 2 * np.arange(H)[:, None]) / 1000.0).astype(np.float32)
    return rgb, depth


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("rec") / "cam.db3")
    cam = SoftwareRealSense("REC0001", INTR, INTR, np.eye(4), fps_hz=30)
    cfg = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="REC0001", width_px=W, height_px=H, fps_hz=30, record_path=path),))
    with RealSenseSource(cfg, devices={"REC0001": cam.device}, max_frame_age_s=1.0) as src:
        for n in range(N):
            cam.push(*_frame(n), timestamp_ms=1000.0 + PERIOD_MS * n)
            src.read(timeout_s=2.0)  # paced by the reader so librealsense sees a steady stream
            time.sleep(PERIOD_MS / 1000.0)
    return path


@pytest.mark.parametrize("align", [False, True])
def test_round_trip_as_fast_as_possible(recording, align):
    cfg = RecordingConfig(paths=(recording,), real_time=False, align_depth_to_color=align)
    src = RecordingSource(cfg, max_frame_age_s=5.0)
    got = []
    with src:
        assert src.serials == ("REC0001",)
        while True:
            try:
                fs = src.read(timeout_s=3.0)
            except EndOfRecordingError:
                break
            time.sleep(0.01)  # a slow consumer loses nothing when not in real time
            got.append(fs["REC0001"])
    assert len(got) == N
    for n, f in enumerate(got):
        rgb, depth = _frame(n)
        assert f.device_time_ms == pytest.approx(1000.0 + PERIOD_MS * n, abs=1e-3)
        np.testing.assert_array_equal(f.rgb, rgb)
        if not align:
            np.testing.assert_allclose(f.depth_m, depth, atol=1e-6)  # exact round trip
        else:  # through rs.align with identical intrinsics: the same surface up to footprint rounding
            valid = f.depth_m > 0
            assert valid.mean() > 0.9
            assert np.mean(np.abs(f.depth_m[valid] - depth[valid]) <= 0.0025) > 0.95
        assert f.intrinsics.fx == pytest.approx(INTR.fx) and f.intrinsics.width == W


def test_real_time_playback_takes_the_recorded_duration(recording):
    src = RecordingSource(RecordingConfig(paths=(recording,), real_time=True), max_frame_age_s=1.0)
    t0 = time.monotonic()
    times = []
    with src:
        while True:
            try:
                fs = src.read(timeout_s=3.0)
            except EndOfRecordingError:
                break
            times.append(fs["REC0001"].device_time_ms)
    elapsed = time.monotonic() - t0
    assert len(times) >= N - 2
    assert np.all(np.diff(times) > 0)
    assert elapsed >= 0.8 * (N - 1) * PERIOD_MS / 1000.0


def test_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(CameraNotFoundError, match="nothere.db3"):
        RecordingSource(RecordingConfig(paths=(str(tmp_path / "nothere.db3"),)))


def test_loop_starts_again(recording):
    src = RecordingSource(RecordingConfig(paths=(recording,), real_time=False, loop=True), max_frame_age_s=5.0)
    times = []
    with src:
        for _ in range(N + 3):
            times.append(src.read(timeout_s=3.0)["REC0001"].device_time_ms)
    assert times[N] == pytest.approx(times[0])  # back at the start after the last frame


def test_two_cameras_recorded_together_play_back_as_sets(tmp_path):
    paths = {s: str(tmp_path / f"{s}.db3") for s in ("RA", "RB")}
    cams = {s: SoftwareRealSense(s, INTR, INTR, np.eye(4), fps_hz=30) for s in paths}
    cfg = RealSenseConfig(cameras=tuple(
        RealSenseCameraConfig(serial=s, width_px=W, height_px=H, fps_hz=30, record_path=p) for s, p in paths.items()))
    n_frames = 6
    with RealSenseSource(cfg, devices={s: c.device for s, c in cams.items()}, max_frame_age_s=1.0) as src:
        for n in range(n_frames):
            for k, c in enumerate(cams.values()):
                rgb, depth = _frame(n)
                c.push(np.ascontiguousarray(rgb[:, :, ::-1]) if k else rgb, depth, timestamp_ms=2000.0 + PERIOD_MS * n)
            src.read(timeout_s=2.0)
            time.sleep(PERIOD_MS / 1000.0)
    play = RecordingSource(RecordingConfig(paths=tuple(paths.values()), real_time=False), max_frame_age_s=5.0)
    sets = []
    with play:
        assert set(play.serials) == {"RA", "RB"}
        while True:
            try:
                sets.append(play.read(timeout_s=3.0))
            except EndOfRecordingError:
                break
    assert len(sets) == n_frames
    for n, fs in enumerate(sets):
        rgb, _ = _frame(n)
        np.testing.assert_array_equal(fs["RA"].rgb, rgb)
        np.testing.assert_array_equal(fs["RB"].rgb, rgb[:, :, ::-1])
        assert fs["RA"].device_time_ms == pytest.approx(fs["RB"].device_time_ms)


def _smooth(n: int) -> np.ndarray:
    """Colour gradients (no two channels alike), as a lens renders a scene; RGB order."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([40 + 2 * x + n, 60 + 3 * y, 200 - x - y], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("color_format", COLOR_FORMATS)
def test_recording_in_each_color_format_plays_back_as_rgb(tmp_path, color_format):
    """Frames in ``color_format`` recorded by librealsense's recorder play back as the original RGB:
    exactly for the byte orders; for YUYV (chroma shared by pixel pairs, BT.601 in 8 bits) within
    the measured rounding of encoding and decoding on a smooth image."""
    path = str(tmp_path / f"{color_format}.db3")
    cam = SoftwareRealSense("FMT1", INTR, INTR, np.eye(4), fps_hz=30, color_format=color_format)
    cfg = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="FMT1", width_px=W, height_px=H, fps_hz=30,
                                                         record_path=path, color_format=color_format),))
    n_frames = 3
    with RealSenseSource(cfg, devices={"FMT1": cam.device}, max_frame_age_s=1.0) as src:
        for n in range(n_frames):
            cam.push(_smooth(n), _frame(n)[1], timestamp_ms=3000.0 + PERIOD_MS * n)
            src.read(timeout_s=2.0)
            time.sleep(PERIOD_MS / 1000.0)
    dev = rs.context().load_device(path)
    recorded = {p.format() for s in dev.query_sensors() for p in s.get_stream_profiles() if p.stream_type() == rs.stream.color}
    assert recorded == {getattr(rs.format, color_format)}  # the file holds the format, not RGB
    got = []
    with RecordingSource(RecordingConfig(paths=(path,), real_time=False), max_frame_age_s=5.0) as play:
        while True:
            try:
                got.append(play.read(timeout_s=3.0)["FMT1"])
            except EndOfRecordingError:
                break
    assert len(got) == n_frames
    for n, f in enumerate(got):
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        err = np.abs(f.rgb.astype(int) - _smooth(n))
        if color_format == "yuyv":
            assert err.mean() <= 1.0 and err.max() <= 3  # measured: mean 0.63, max 2 (random pixels: mean 36)
        else:
            np.testing.assert_array_equal(f.rgb, _smooth(n))
        depth, valid = _frame(n)[1], f.depth_m > 0  # depth still pairs with colour and aligns to it
        assert valid.mean() > 0.9 and np.mean(np.abs(f.depth_m[valid] - depth[valid]) <= 0.0025) > 0.95
