"""RealSense source through the real librealsense library, fed by a software device."""

from __future__ import annotations

import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from calibration import CameraCalibration, CameraIntrinsics, MissingCameraError, SetupCalibration, make_pose  # noqa: E402
from twin.cameras import (  # noqa: E402
    COLOR_FORMATS,
    CameraError,
    CameraNotFoundError,
    FrameTimeoutError,
    RealSenseCameraConfig,
    RealSenseConfig,
    RealSenseSource,
    SoftwareRealSense,
    StaleFrameError,
)

W, H = 160, 120
COLOR = CameraIntrinsics(150.0, 150.0, 79.5, 59.5, W, H, "brown_conrady", (0.0, 0.0, 0.0, 0.0, 0.0))
DEPTH = CameraIntrinsics(140.0, 140.0, 80.5, 58.5, W, H, "brown_conrady", (0.0, 0.0, 0.0, 0.0, 0.0))
BASELINE_M = 0.015


def _scene(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A depth plane at 1.0 m with a 0.7 m box in the middle; colour encodes the frame number."""
    depth = np.full((H, W), 1.0, np.float32)
    depth[40:80, 60:100] = 0.7
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = n % 256
    rgb[..., 1] = np.arange(W, dtype=np.uint8)[None, :]
    rgb[..., 2] = np.arange(H, dtype=np.uint8)[:, None]
    return rgb, depth


def _reference_align(depth_m: np.ndarray) -> np.ndarray:
    """Independent z-buffered reprojection of depth pixels into the colour camera (pixel centres)."""
    T_color_depth = make_pose(np.eye(3), [BASELINE_M, 0.0, 0.0])
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u].astype(np.float64)
    p = np.stack([(u - DEPTH.cx) / DEPTH.fx * z, (v - DEPTH.cy) / DEPTH.fy * z, z, np.ones_like(z)])
    q = T_color_depth @ p
    uc = np.rint(COLOR.fx * q[0] / q[2] + COLOR.cx).astype(int)
    vc = np.rint(COLOR.fy * q[1] / q[2] + COLOR.cy).astype(int)
    out = np.full((H, W), np.inf)
    ok = (uc >= 0) & (uc < W) & (vc >= 0) & (vc < H)
    np.minimum.at(out, (vc[ok], uc[ok]), q[2][ok])
    out[np.isinf(out)] = 0.0
    return out


def _device(serial: str = "SW0001", color_format: str = "rgb8") -> SoftwareRealSense:
    return SoftwareRealSense(serial, COLOR, DEPTH, make_pose(np.eye(3), [BASELINE_M, 0.0, 0.0]), fps_hz=30,
                             color_format=color_format)


def _config(*serials: str, color_format: str = "rgb8", **kw) -> RealSenseConfig:
    cams = tuple(RealSenseCameraConfig(serial=s, width_px=W, height_px=H, fps_hz=30, color_format=color_format)
                 for s in serials)
    return RealSenseConfig(cameras=cams, **kw)


def test_frames_through_librealsense_are_aligned_and_timestamped():
    cam = _device()
    calib = SetupCalibration({"SW0001": CameraCalibration("SW0001", COLOR, T_world_camera=make_pose(np.eye(3), [0.5, 0.0, 1.0]))})
    src = RealSenseSource(_config("SW0001"), calib, devices={"SW0001": cam.device}, max_frame_age_s=0.5)
    with src:
        for n in range(4):
            rgb, depth = _scene(n)
            t_push = time.monotonic_ns()
            cam.push(rgb, depth, timestamp_ms=5000.0 + 33.3 * n)
            fs = src.read(timeout_s=2.0)
            f = fs["SW0001"]
            assert f.serial == "SW0001"
            assert f.device_time_ms == pytest.approx(5000.0 + 33.3 * n)
            assert f.time_domain == "hardware_clock"
            assert t_push <= f.host_time_ns <= time.monotonic_ns()
            np.testing.assert_array_equal(f.rgb, rgb)
            assert f.depth_m.dtype == np.float32 and f.depth_m.shape == (H, W)
            np.testing.assert_allclose(f.T_world_camera[:3, 3], [0.5, 0.0, 1.0])
            assert f.intrinsics == COLOR
    # Alignment by librealsense agrees with an independent reprojection (away from occlusion edges).
    ref = _reference_align(depth)
    got = f.depth_m
    both = (ref > 0) & (got > 0)
    assert (got > 0).mean() > 0.9 and both.mean() > 0.8
    close = np.abs(got[both] - ref[both]) < 2e-3
    assert close.mean() > 0.97
    # The box's edges in the colour image are where the reprojection puts them, not where they are
    # in the depth image (they move by several pixels here).
    def box_cols(img: np.ndarray) -> np.ndarray:
        return np.nonzero(np.abs(img[60] - 0.7) < 2e-3)[0]

    assert abs(box_cols(ref)[-1] - box_cols(depth)[-1]) >= 3
    assert abs(box_cols(got)[0] - box_cols(ref)[0]) <= 1
    assert abs(box_cols(got)[-1] - box_cols(ref)[-1]) <= 1
    assert got[60, 80] == pytest.approx(0.7, abs=2e-3)
    assert got[5, 5] == pytest.approx(1.0, abs=2e-3)
    st = src.stats()
    assert st.frames_received["SW0001"] == 4 and st.sets_read == 4


def test_two_cameras_make_one_frame_set_and_latest_wins():
    a, b = _device("SWA"), _device("SWB")
    src = RealSenseSource(_config("SWA", "SWB"), devices={"SWA": a.device, "SWB": b.device}, max_frame_age_s=1.0)
    with src:
        for n in range(3):
            rgb, depth = _scene(n)
            a.push(rgb, depth, 100.0 + n)
            b.push(rgb, depth, 200.0 + n)
            time.sleep(0.05)
        fs = src.read(timeout_s=2.0)
        assert set(fs.serials) == {"SWA", "SWB"}
        assert fs["SWA"].rgb[0, 0, 0] == 2 and fs["SWB"].rgb[0, 0, 0] == 2  # newest only
        assert src.stats().frames_dropped["SWA"] >= 1
        # Only one camera delivers: the timeout names the silent one.
        a.push(*_scene(9), 500.0)
        with pytest.raises(FrameTimeoutError, match="SWB") as ei:
            src.read(timeout_s=0.3)
        assert ei.value.serials == ("SWB",)


def test_missing_serial_is_named():
    cam = _device("SW0001")
    src = RealSenseSource(_config("SW0001", "NOPE123"), devices={"SW0001": cam.device}, context=rs.context())
    with pytest.raises(CameraNotFoundError, match="NOPE123"):
        src.start()
    calib = SetupCalibration({"SW0001": CameraCalibration("SW0001", COLOR)})
    with pytest.raises(MissingCameraError, match="OTHER"):
        RealSenseSource(_config("OTHER"), calib)


def test_stale_frame_reported_and_silent_camera_restarted():
    cam = _device()
    cfg = _config("SW0001", silence_restart_s=0.3, reconnect_interval_s=0.05, poll_timeout_s=0.05)
    src = RealSenseSource(cfg, devices={"SW0001": cam.device}, max_frame_age_s=0.1)
    with src:
        cam.push(*_scene(0), 10.0)
        time.sleep(0.25)
        with pytest.raises(StaleFrameError, match="SW0001"):
            src.read(timeout_s=1.0)
        time.sleep(0.6)  # silent longer than silence_restart_s: the reader restarts the pipeline
        assert src.stats().reconnects["SW0001"] >= 1
        assert "no frames" in src.stats().last_error
        for n in range(1, 3):
            cam.push(*_scene(n), 10.0 + 33 * n)
            fs = src.read(timeout_s=2.0)
            assert fs["SW0001"].rgb[0, 0, 0] == n


def test_fixed_exposure_and_white_balance_reach_the_device():
    cam = _device()
    cfg = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="SW0001", width_px=W, height_px=H, fps_hz=30,
                                                         exposure_us=8000, white_balance_k=4200, gain=32,
                                                         laser_power_mw=90),))
    with RealSenseSource(cfg, devices={"SW0001": cam.device}, max_frame_age_s=1.0):
        sensors = {s.get_info(rs.camera_info.name): s for s in cam.device.query_sensors()}
        color, depth = sensors["RGB Camera"], sensors["Stereo Module"]
        assert color.get_option(rs.option.enable_auto_exposure) == 0
        assert color.get_option(rs.option.exposure) == 80  # 100 µs units on the RGB sensor
        assert color.get_option(rs.option.enable_auto_white_balance) == 0
        assert color.get_option(rs.option.white_balance) == 4200
        assert color.get_option(rs.option.gain) == 32
        assert depth.get_option(rs.option.laser_power) == 90
    # A value outside the device's range is an error naming the camera, the option and the range.
    wb = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="SW0001", width_px=W, height_px=H, white_balance_k=9000),))
    with pytest.raises(CameraError, match="SW0001.*White Balance = 9000 .range 2800..6500"):
        RealSenseSource(wb, devices={"SW0001": _device().device}).start()
    bad = RealSenseConfig(cameras=(RealSenseCameraConfig(serial="SW0001", width_px=W + 1, height_px=H, fps_hz=30),))
    with pytest.raises(CameraError, match="SW0001: cannot start"):
        RealSenseSource(bad, devices={"SW0001": _device().device}).start()


@pytest.mark.parametrize("color_format", COLOR_FORMATS)
def test_live_camera_in_each_color_format_reads_as_rgb(color_format):
    """A camera streaming ``color_format`` through librealsense yields RGB frames: exact for the byte
    orders, within 8-bit BT.601 rounding for YUYV (chroma shared by pixel pairs; the scene's colour
    changes by at most 1 level per pixel along rows, so the shared chroma loses almost nothing)."""
    cam = _device(color_format=color_format)
    with RealSenseSource(_config("SW0001", color_format=color_format), devices={"SW0001": cam.device},
                         max_frame_age_s=1.0) as src:
        for n in range(2):
            rgb, depth = _scene(40 + n)
            cam.push(rgb, depth, timestamp_ms=7000.0 + 33.3 * n)
            f = src.read(timeout_s=2.0)["SW0001"]
            assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
            err = np.abs(f.rgb.astype(int) - rgb)
            if color_format == "yuyv":
                assert err.mean() <= 1.0 and err.max() <= 3
            else:
                np.testing.assert_array_equal(f.rgb, rgb)
            assert f.depth_m[60, 80] == pytest.approx(0.7, abs=2e-3)  # depth aligned as with RGB8
    # The format asked for is the format the device must offer.
    with pytest.raises(CameraError, match=r"SW0001: cannot start colour \(rgb8\)"):
        RealSenseSource(_config("SW0001"), devices={"SW0001": _device(color_format="bgr8").device}).start()
