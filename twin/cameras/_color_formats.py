"""Colour formats of RealSense devices and recordings, converted to and from RGB (imports OpenCV).

Formats are named as librealsense names them (``rs.format.<name>``):

- ``rgb8``: 3 bytes per pixel, R, G, B.
- ``bgr8``: 3 bytes per pixel, B, G, R.
- ``rgba8``: 4 bytes per pixel, R, G, B, A (alpha is dropped).
- ``bgra8``: 4 bytes per pixel, B, G, R, A (alpha is dropped).
- ``yuyv``: 2 bytes per pixel, Y0 U Y1 V per pair of pixels (YUY2: luma per pixel, chroma shared
  by each horizontal pair), ITU-R BT.601 with limited range (Y 16..235), as librealsense's own
  ``rs.yuy_decoder`` reads it. The width is even.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._config import COLOR_FORMATS
from ._errors import ColorFormatError

BYTES_PER_PIXEL: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "yuyv": 2}

_TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
           "yuyv": cv2.COLOR_YUV2RGB_YUY2}
_FROM_RGB = {"bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA,
             "yuyv": cv2.COLOR_RGB2YUV_YUY2}


def check_color_format(color_format: str, where: str = "") -> str:
    """``color_format`` if a conversion to RGB exists for it, else :class:`ColorFormatError` naming it
    (prefixed by ``where``) and the supported formats."""
    if color_format not in COLOR_FORMATS:
        prefix = f"{where}: " if where else ""
        raise ColorFormatError(
            f"{prefix}colour format {color_format!r} is not supported; supported formats: {', '.join(COLOR_FORMATS)}"
        )
    return color_format


def to_rgb(pixels: np.ndarray, color_format: str) -> np.ndarray:
    """A new RGB image from pixels stored in ``color_format``.

    Args:
        pixels: uint8 (H, W, B), the format's B bytes per pixel in memory order (B = 3 for
            ``rgb8``/``bgr8``, 4 for ``rgba8``/``bgra8``, 2 for ``yuyv``).
        color_format: one of :data:`COLOR_FORMATS`.

    Returns:
        uint8 (H, W, 3), RGB order, C-contiguous, not sharing memory with ``pixels``.
    """
    check_color_format(color_format)
    bpp = BYTES_PER_PIXEL[color_format]
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != bpp:
        shape = getattr(pixels, "shape", None)
        raise ValueError(f"{color_format} pixels must be uint8 (H, W, {bpp}), got {shape}")
    if color_format == "yuyv" and pixels.shape[1] % 2:
        raise ValueError(f"yuyv pixels must have an even width, got {pixels.shape[1]}")
    if color_format == "rgb8":
        return np.array(pixels, dtype=np.uint8, order="C", copy=True)
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[color_format])


def from_rgb(rgb: np.ndarray, color_format: str) -> np.ndarray:
    """The RGB image ``rgb`` (uint8 (H, W, 3), RGB order) stored in ``color_format``: uint8 (H, W, B)
    as :func:`to_rgb` reads it (alpha 255; ``yuyv`` averages the chroma of each horizontal pair and
    needs an even width)."""
    check_color_format(color_format)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {getattr(rgb, 'shape', None)}")
    if color_format == "yuyv" and rgb.shape[1] % 2:
        raise ValueError(f"yuyv needs an even width, got {rgb.shape[1]}")
    if color_format == "rgb8":
        return np.array(rgb, dtype=np.uint8, order="C", copy=True)
    return cv2.cvtColor(np.ascontiguousarray(rgb), _FROM_RGB[color_format])


__all__ = ["BYTES_PER_PIXEL", "check_color_format", "from_rgb", "to_rgb"]
