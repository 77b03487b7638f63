"""Conversions between librealsense and project types (imports pyrealsense2)."""

from __future__ import annotations

import numpy as np
import pyrealsense2 as rs

from calibration import CameraIntrinsics

from ._color_formats import BYTES_PER_PIXEL, check_color_format, to_rgb

_MODEL_TO_NAME = {
    rs.distortion.none: "none",
    rs.distortion.brown_conrady: "brown_conrady",
    rs.distortion.inverse_brown_conrady: "inverse_brown_conrady",
    rs.distortion.modified_brown_conrady: "modified_brown_conrady",
    rs.distortion.kannala_brandt4: "kannala_brandt4",
}
_NAME_TO_MODEL = {v: k for k, v in _MODEL_TO_NAME.items()}
_NAME_TO_MODEL["opencv"] = rs.distortion.brown_conrady


def intrinsics_from_rs(i: rs.intrinsics) -> CameraIntrinsics:
    """Project intrinsics from librealsense's (same pixel convention: centres at integers)."""
    model = _MODEL_TO_NAME.get(i.model)
    if model is None:
        raise ValueError(f"unsupported librealsense distortion model {i.model}")
    coeffs = tuple(float(c) for c in i.coeffs)
    if model == "none" or not any(coeffs):
        coeffs = () if model == "none" else coeffs
    if model == "kannala_brandt4":
        coeffs = coeffs[:4]
    return CameraIntrinsics(float(i.fx), float(i.fy), float(i.ppx), float(i.ppy), int(i.width), int(i.height), model, coeffs)


def intrinsics_to_rs(c: CameraIntrinsics) -> rs.intrinsics:
    i = rs.intrinsics()
    i.width, i.height = c.width, c.height
    i.fx, i.fy, i.ppx, i.ppy = c.fx, c.fy, c.cx, c.cy
    i.model = _NAME_TO_MODEL[c.distortion_model] if c.distortion_model in _NAME_TO_MODEL else rs.distortion.none
    coeffs = list(c.coeffs[:5]) + [0.0] * max(0, 5 - len(c.coeffs))
    i.coeffs = coeffs
    return i


def domain_name(d: object) -> str:
    return str(d).rsplit(".", 1)[-1]


def color_format_name(fmt: rs.format) -> str:
    """librealsense's name of a format: ``rs.format.bgr8`` -> ``"bgr8"``."""
    return str(fmt).rsplit(".", 1)[-1]


def rs_color_format(name: str) -> rs.format:
    """The ``rs.format`` of a supported colour format name (``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``,
    ``yuyv``); :class:`ColorFormatError` for any other."""
    return getattr(rs.format, check_color_format(name))


def color_frame_to_rgb(color: rs.video_frame) -> np.ndarray:
    """A copy of a librealsense colour frame as RGB: uint8 (H, W, 3), RGB order.

    The frame may be ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``yuyv`` (see
    :mod:`._color_formats`); any other format raises :class:`ColorFormatError` naming it. Row padding
    (a stride wider than the image) is skipped.
    """
    name = check_color_format(color_format_name(color.get_profile().format()), "colour frame")
    w, h, bpp = color.get_width(), color.get_height(), BYTES_PER_PIXEL[name]
    data = np.asanyarray(color.get_data())  # (H, W[, B]) honouring the row stride; yuyv as uint16 per pixel
    if data.dtype != np.uint8:
        data = data.view(np.uint8)
    if data.size != h * w * bpp:
        raise ValueError(f"{name} colour frame {w}x{h}: {data.shape} {data.dtype} does not hold the image")
    return to_rgb(data.reshape(h, w, bpp), name)


def frames_to_arrays(color: rs.video_frame, depth: rs.depth_frame | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Copies of the colour (uint8 (H, W, 3), RGB order, from any format :func:`color_frame_to_rgb`
    reads) and depth (float32 metres) of librealsense frames."""
    rgb = color_frame_to_rgb(color)
    if depth is None:
        return rgb, None
    raw = np.asanyarray(depth.get_data())
    d = raw.astype(np.float32) * np.float32(depth.get_units())
    return rgb, d


class FramePairer:
    """Accepts a colour/depth pair from librealsense's syncer once, and only if both are from the same
    instant (device timestamps within ``tolerance_ms``); the syncer may repeat a frame or pair a new
    depth frame with the previous colour frame."""

    def __init__(self, tolerance_ms: float) -> None:
        self.tolerance_ms = float(tolerance_ms)
        self._last: tuple[int, int] | None = None

    def accept(self, color: rs.frame, depth: rs.frame | None) -> bool:
        if depth is not None:
            if abs(color.get_timestamp() - depth.get_timestamp()) > self.tolerance_ms:
                return False
            key = (color.get_frame_number(), depth.get_frame_number())
        else:
            key = (color.get_frame_number(), -1)
        if key == self._last:
            return False
        self._last = key
        return True
