"""The pinhole camera model with lens distortion, shared by capture, calibration and rendering.

Only numpy is imported here so that the renderer and other light consumers can use the type freely.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# Distortion models understood by the project.
#   "none"                  no distortion; ``coeffs`` must be empty or all zero.
#   "opencv"                OpenCV's radial-tangential model, coeffs (k1, k2, p1, p2[, k3[, k4, k5, k6]]).
#   "brown_conrady"         librealsense's name for the same forward model, coeffs (k1, k2, p1, p2, k3).
#   "inverse_brown_conrady" librealsense: coefficients map distorted -> undistorted pixels (D435 colour).
#   "modified_brown_conrady" librealsense variant used by older devices.
#   "kannala_brandt4"       fisheye model, coeffs (k1, k2, k3, k4) as in ``cv2.fisheye``.
DISTORTION_MODELS: tuple[str, ...] = (
    "none",
    "opencv",
    "brown_conrady",
    "inverse_brown_conrady",
    "modified_brown_conrady",
    "kannala_brandt4",
)
_OPENCV_COMPATIBLE = ("none", "opencv", "brown_conrady")


@dataclasses.dataclass(frozen=True)
class CameraIntrinsics:
    """Intrinsics of one camera stream, OpenCV convention.

    Pixel coordinates: x right, y down, with pixel centres at integer coordinates (``(0, 0)`` is the
    centre of the top-left pixel). A camera-frame point ``(X, Y, Z)`` [m] (x right, y down, z forward)
    projects, before distortion, to ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy`` [px].

    Attributes:
        fx, fy: focal lengths [px].
        cx, cy: principal point [px].
        width, height: image size [px].
        distortion_model: one of ``DISTORTION_MODELS``.
        coeffs: distortion coefficients in the order of ``distortion_model``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion_model: str = "none"
    coeffs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
                raise ValueError(f"CameraIntrinsics.{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"CameraIntrinsics.{name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(f"unknown distortion model {self.distortion_model!r}; known: {list(DISTORTION_MODELS)}")
        coeffs = tuple(float(c) for c in self.coeffs)
        if not all(np.isfinite(coeffs)):
            raise ValueError(f"distortion coefficients must be finite, got {coeffs}")
        if self.distortion_model == "none" and any(c != 0.0 for c in coeffs):
            raise ValueError("distortion model 'none' takes no non-zero coefficients")
        if self.distortion_model == "kannala_brandt4" and len(coeffs) not in (0, 4):
            raise ValueError("kannala_brandt4 takes 4 coefficients")
        if self.distortion_model == "opencv" and len(coeffs) not in (0, 4, 5, 8, 12, 14):
            raise ValueError("opencv distortion takes 4, 5, 8, 12 or 14 coefficients")
        object.__setattr__(self, "coeffs", coeffs)

    @property
    def K(self) -> np.ndarray:
        """The 3x3 camera matrix [px], float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` [px], the order OpenCV takes image sizes in."""
        return (self.width, self.height)

    @property
    def has_distortion(self) -> bool:
        return any(c != 0.0 for c in self.coeffs)

    def opencv_distortion(self) -> np.ndarray:
        """Coefficients for OpenCV's radial-tangential model, float64 shape (N,) (N >= 5).

        Raises:
            ValueError: the model is not the OpenCV forward model and has non-zero coefficients.
        """
        if self.distortion_model not in _OPENCV_COMPATIBLE and self.has_distortion:
            raise ValueError(
                f"distortion model {self.distortion_model!r} is not OpenCV's radial-tangential model; "
                "undistort the image or re-estimate intrinsics from board images"
            )
        c = list(self.coeffs) if self.distortion_model in _OPENCV_COMPATIBLE else []
        c += [0.0] * max(0, 5 - len(c))
        return np.asarray(c, dtype=np.float64)

    def project(self, points_camera: np.ndarray) -> np.ndarray:
        """Project camera-frame points ``(N, 3)`` [m] to pixels ``(N, 2)`` (pinhole, no distortion)."""
        p = np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2]
        return np.stack([self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy], axis=1)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera at another resolution (distortion unchanged; pixel centres kept consistent)."""
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON/msgpack-safe)."""
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
            "distortion_model": self.distortion_model,
            "coeffs": list(self.coeffs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraIntrinsics:
        if not isinstance(data, dict):
            raise ValueError(f"intrinsics must be a mapping, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown intrinsics key(s) {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(data)
        kw["coeffs"] = tuple(kw.get("coeffs", ()) or ())
        return cls(**kw)

    @classmethod
    def from_K(
        cls,
        K: np.ndarray,
        width: int,
        height: int,
        distortion_model: str = "none",
        coeffs: tuple[float, ...] | np.ndarray = (),
    ) -> CameraIntrinsics:
        """From a 3x3 camera matrix [px] (skew must be zero)."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {K.shape}")
        if abs(K[0, 1]) > 1e-9:
            raise ValueError("skewed camera matrices are not supported")
        return cls(
            float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height),
            distortion_model, tuple(float(c) for c in np.ravel(coeffs)),
        )


__all__ = ["CameraIntrinsics", "DISTORTION_MODELS"]
