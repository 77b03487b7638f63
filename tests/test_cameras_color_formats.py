"""Colour formats to RGB: byte orders, YUYV against librealsense's own decoder, unsupported formats."""

from __future__ import annotations

import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2")

from calibration import CameraIntrinsics  # noqa: E402
from twin.cameras import (  # noqa: E402
    COLOR_FORMATS,
    ColorFormatError,
    RealSenseCameraConfig,
    RealSenseConfig,
    RealSenseSource,
    RecordingConfig,
    RecordingSource,
    SoftwareRealSense,
    from_rgb,
    to_rgb,
)
from twin.cameras._rsutil import color_frame_to_rgb, intrinsics_to_rs  # noqa: E402

W, H = 64, 48
INTR = CameraIntrinsics(60.0, 60.0, 31.5, 23.5, W, H)


def test_each_format_is_read_in_its_byte_order():
    px = {  # one pixel R=10, G=20, B=30 as each format stores it
        "rgb8": [10, 20, 30], "bgr8": [30, 20, 10], "rgba8": [10, 20, 30, 77], "bgra8": [30, 20, 10, 77],
    }
    for fmt, b in px.items():
        img = np.tile(np.array(b, np.uint8), (2, 4, 1))
        out = to_rgb(img, fmt)
        assert out.shape == (2, 4, 3) and out.dtype == np.uint8 and not np.shares_memory(out, img)
        assert np.all(out == [10, 20, 30]), fmt
    # YUYV (Y0 U Y1 V), BT.601 limited range: black, white and the standard's red (Y 81, Cb 90, Cr 240).
    for (y, u, v), rgb in (((16, 128, 128), [0, 0, 0]), ((235, 128, 128), [255, 255, 255]), ((81, 90, 240), [255, 0, 0])):
        img = np.tile(np.array([[y, u], [y, v]], np.uint8), (2, 2, 1))  # (2, 4, 2): two pixel pairs per row
        np.testing.assert_allclose(to_rgb(img, "yuyv").astype(int), np.broadcast_to(rgb, (2, 4, 3)), atol=1)
    # The inverse stores what to_rgb reads: exactly for the byte orders.
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for fmt in COLOR_FORMATS[:4]:
        np.testing.assert_array_equal(to_rgb(from_rgb(rgb, fmt), fmt), rgb)


def test_yuyv_matches_librealsense_decoder():
    """The same YUYV frame through ``color_frame_to_rgb`` and librealsense's ``rs.yuy_decoder``."""
    cam = SoftwareRealSense("YUV1", INTR, color_format="yuyv")
    pipe = rs.pipeline(rs.context())
    pipe.set_device(cam.device)
    conf = rs.config()
    conf.enable_stream(rs.stream.color, W, H, rs.format.yuyv, 30)
    pipe.start(conf)
    try:
        rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)  # strong chroma everywhere
        cam.push(rgb, None, 100.0)
        color = pipe.wait_for_frames(2000).get_color_frame()
        assert color.get_profile().format() == rs.format.yuyv
        ours = color_frame_to_rgb(color)
        theirs = np.asanyarray(rs.yuy_decoder().process(color).get_data()).astype(int)
    finally:
        pipe.stop()
    diff = np.abs(ours.astype(int) - theirs)
    assert ours.shape == (H, W, 3) and theirs.shape == (H, W, 3)
    assert diff.max() <= 2 and diff.mean() < 1.0  # integer rounding of the two implementations


def _raw_color_frames(fmt: rs.format, bpp: int, rows: list[np.ndarray], record_to: str = "") -> list:
    """Colour frames of a bare ``rs.software_device`` in format ``fmt`` (any librealsense format),
    one per ``rows`` entry (uint8 (H, stride bytes): each row's pixels, then any padding), taken
    through a pipeline (which records them to ``record_to`` when set)."""
    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, "RAW1")
    sensor = dev.add_sensor("RGB Camera")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.color, 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = W, H, 30, bpp, fmt
    vs.intrinsics = intrinsics_to_rs(INTR)
    profile = sensor.add_video_stream(vs, True).as_video_stream_profile()
    pipe = rs.pipeline(rs.context())
    pipe.set_device(dev)
    conf = rs.config()
    conf.enable_stream(rs.stream.color, W, H, fmt, 30)
    if record_to:
        conf.enable_record_to_file(record_to)
    pipe.start(conf)
    got = []
    try:
        for n, pixels in enumerate(rows):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels, pixels.shape[1], bpp
            f.timestamp, f.domain, f.frame_number = 100.0 + 33.3 * n, rs.timestamp_domain.hardware_clock, n
            f.profile = profile
            sensor.on_video_frame(f)
            color = pipe.wait_for_frames(2000).get_color_frame()
            color.keep()
            got.append(color)
            time.sleep(0.03)
    finally:
        pipe.stop()
    return got


@pytest.mark.parametrize("color_format", ["bgr8", "yuyv"])
def test_rows_padded_beyond_the_image_are_skipped(color_format):
    bpp = {"bgr8": 3, "yuyv": 2}[color_format]
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    rows = np.full((H, W * bpp + 32), 99, np.uint8)  # 32 bytes of padding after each row
    rows[:, : W * bpp] = from_rgb(rgb, color_format).reshape(H, W * bpp)
    (color,) = _raw_color_frames(getattr(rs.format, color_format), bpp, [rows])
    assert color.get_stride_in_bytes() == W * bpp + 32
    np.testing.assert_array_equal(color_frame_to_rgb(color), to_rgb(from_rgb(rgb, color_format), color_format))


def test_unsupported_formats_are_named_with_the_supported_ones(tmp_path):
    supported = "supported formats: rgb8, bgr8, rgba8, bgra8, yuyv"
    with pytest.raises(ColorFormatError, match=f"'nv12' is not supported; {supported}"):
        to_rgb(np.zeros((2, 2, 2), np.uint8), "nv12")
    with pytest.raises(ValueError, match="camera C1: colour format 'z16' is not supported"):  # also a ValueError
        RealSenseSource(RealSenseConfig(cameras=(RealSenseCameraConfig(serial="C1", color_format="z16"),)))
    with pytest.raises(ColorFormatError, match="'y8'"):
        SoftwareRealSense("C2", INTR, color_format="y8")
    path = str(tmp_path / "uyvy.db3")
    frames = _raw_color_frames(rs.format.uyvy, 2, [np.full((H, W * 2), 128, np.uint8)] * 2, record_to=path)
    assert frames[0].get_profile().format() == rs.format.uyvy
    with pytest.raises(ColorFormatError, match=f"colour frame: colour format 'uyvy' is not supported; {supported}"):
        color_frame_to_rgb(frames[0])
    src = RecordingSource(RecordingConfig(paths=(path,), real_time=False))
    with pytest.raises(ColorFormatError, match=f"recording .*uyvy.db3: colour format 'uyvy' is not supported; {supported}"):
        src.start()
