"""ChArUco board description, printable generation (PNG/PDF at exact physical scale) and detection.

Board frame (OpenCV's): origin at the outer top-left corner of the chessboard as printed, x along the
``squares_x`` direction (right), y along ``squares_y`` (down the printed page), z into the board
(away from a viewer facing the printed side). Corners lie at z = 0. Metres.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ._errors import BoardNotFoundError, CalibrationFileError

_INCH_M = 0.0254


@dataclasses.dataclass(frozen=True)
class CharucoBoardSpec:
    """A ChArUco board.

    Attributes:
        squares_x: chessboard squares along x (columns).
        squares_y: chessboard squares along y (rows).
        square_length_m: side of a chessboard square as printed [m].
        marker_length_m: side of an ArUco marker [m] (< ``square_length_m``).
        dictionary: an OpenCV predefined ArUco dictionary name, e.g. ``"DICT_5X5_100"``.
        legacy_pattern: OpenCV < 4.6 layout (only for boards printed with old tools).
    """

    squares_x: int = 7
    squares_y: int = 5
    square_length_m: float = 0.04
    marker_length_m: float = 0.03
    dictionary: str = "DICT_5X5_100"
    legacy_pattern: bool = False

    def __post_init__(self) -> None:
        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError(f"a ChArUco board needs at least 2x2 squares, got {self.squares_x}x{self.squares_y}")
        if not (0 < self.marker_length_m < self.square_length_m):
            raise ValueError(
                f"marker_length_m ({self.marker_length_m}) must be positive and below square_length_m ({self.square_length_m})"
            )
        import cv2

        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}")
        n_markers = (self.squares_x * self.squares_y) // 2
        dict_size = int(self.dictionary.rsplit("_", 1)[-1]) if self.dictionary.rsplit("_", 1)[-1].isdigit() else 10**6
        if n_markers > dict_size:
            raise ValueError(f"{self.dictionary} holds {dict_size} markers; the board needs {n_markers}")

    @property
    def size_m(self) -> tuple[float, float]:
        """Board size without margin ``(width, height)`` [m]."""
        return (self.squares_x * self.square_length_m, self.squares_y * self.square_length_m)

    @property
    def num_corners(self) -> int:
        """Number of inner chessboard corners (ChArUco corner ids 0..n-1)."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    def corner_points(self) -> np.ndarray:
        """All inner corners in the board frame, float64 (num_corners, 3) [m], row-major from top-left."""
        ix, iy = np.meshgrid(np.arange(1, self.squares_x), np.arange(1, self.squares_y))
        pts = np.stack([ix.ravel(), iy.ravel(), np.zeros(ix.size)], axis=1) * self.square_length_m
        return pts.astype(np.float64)

    def cv_board(self) -> Any:
        """The ``cv2.aruco.CharucoBoard`` (cached per spec)."""
        return _cv_board(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharucoBoardSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in dict(data).items() if k in known}
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> CharucoBoardSpec:
        """Read the parameters file written by :func:`write_board` (or any YAML with these keys)."""
        path = Path(path)
        if not path.is_file():
            raise CalibrationFileError(f"board file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise CalibrationFileError(f"board file {path} must hold a mapping")
        return cls.from_dict(data.get("board", data))


@functools.lru_cache(maxsize=16)
def _cv_board(spec: CharucoBoardSpec) -> Any:
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    board = cv2.aruco.CharucoBoard(
        (spec.squares_x, spec.squares_y), spec.square_length_m, spec.marker_length_m, dictionary
    )
    board.setLegacyPattern(spec.legacy_pattern)
    return board


@functools.lru_cache(maxsize=16)
def _detector(spec: CharucoBoardSpec) -> Any:
    import cv2

    params = cv2.aruco.CharucoParameters()
    det_params = cv2.aruco.DetectorParameters()
    det_params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.CharucoDetector(spec.cv_board(), params, det_params)


def render_board(spec: CharucoBoardSpec, px_per_m: float, margin_m: float = 0.0) -> np.ndarray:
    """The board as a grayscale uint8 image (H, W) at ``px_per_m`` with a white margin of ``margin_m``.

    The board's outer corner (board frame origin) lies at pixel boundary ``margin_m * px_per_m``; pixel
    (row i, column j) covers board coordinates ``[j, j+1) / px_per_m - margin_m`` along x.
    """
    import cv2

    w_m, h_m = spec.size_m
    w = int(round(w_m * px_per_m))
    h = int(round(h_m * px_per_m))
    m = int(round(margin_m * px_per_m))
    img = spec.cv_board().generateImage((w, h), marginSize=0, borderBits=1)
    if m > 0:
        img = cv2.copyMakeBorder(img, m, m, m, m, cv2.BORDER_CONSTANT, value=255)
    return img


@dataclasses.dataclass(frozen=True)
class BoardPrint:
    """Files written by :func:`write_board` and the exact print scale."""

    png_path: Path
    pdf_path: Path
    params_path: Path
    px_per_m: float
    dpi: float
    page_size_m: tuple[float, float]


def write_board(
    spec: CharucoBoardSpec,
    out_prefix: str | Path,
    dpi: float = 300.0,
    margin_m: float = 0.01,
) -> BoardPrint:
    """Write ``<prefix>.png``, ``<prefix>.pdf`` (page = board + margin, exact physical scale) and
    ``<prefix>.yaml`` (board parameters and print instructions).

    The pixel density is adjusted from ``dpi`` so that a square is a whole number of pixels and the
    density a whole number of pixels per metre; the PNG carries it (pHYs) and the PDF page size is
    set from it, so printing at 100 % ("actual size") reproduces ``square_length_m`` exactly.
    """
    from PIL import Image

    if dpi <= 0:
        raise ValueError("dpi must be positive")
    target_ppm = dpi / _INCH_M
    px_per_square = max(8, int(round(spec.square_length_m * target_ppm)))
    # Make px_per_m an integer (PNG stores pixels per metre) while keeping whole-pixel squares.
    px_per_m = px_per_square / spec.square_length_m
    if abs(px_per_m - round(px_per_m)) > 1e-6:
        # Adjust squares to the nearest integer density; squares stay within 0.5 px of whole.
        px_per_m = float(round(px_per_m))
    px_per_m = float(round(px_per_m, 6))
    img = render_board(spec, px_per_m, margin_m)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    png = out_prefix.with_suffix(".png")
    pdf = out_prefix.with_suffix(".pdf")
    params = out_prefix.with_suffix(".yaml")
    real_dpi = px_per_m * _INCH_M
    pil = Image.fromarray(img)
    pil.save(png, dpi=(real_dpi, real_dpi))
    pil.convert("RGB").save(pdf, resolution=real_dpi)
    page = (img.shape[1] / px_per_m, img.shape[0] / px_per_m)
    doc = {
        "board": spec.to_dict(),
        "print": {
            "px_per_m": px_per_m,
            "dpi": real_dpi,
            "margin_m": margin_m,
            "image_size_px": [int(img.shape[1]), int(img.shape[0])],
            "page_size_m": [page[0], page[1]],
            "instructions": (
                "Print at 100% (actual size, no fit-to-page). Measure one square: it must be "
                f"{spec.square_length_m * 1000:.2f} mm; if not, set board.square_length_m and "
                "board.marker_length_m to the measured sizes before calibrating. Mount flat and rigid."
            ),
        },
        "frame": "origin at the chessboard's outer top-left corner, x right, y down the page, z into the board",
    }
    params.write_text(yaml.safe_dump(doc, sort_keys=False))
    return BoardPrint(png, pdf, params, px_per_m, real_dpi, page)


@dataclasses.dataclass(frozen=True)
class BoardDetection:
    """ChArUco corners found in one image.

    Attributes:
        ids: corner ids, int32 (N,).
        image_points: corner positions [px], float64 (N, 2), OpenCV pixel convention.
        object_points: the same corners in the board frame [m], float64 (N, 3).
        image_size: ``(width, height)`` of the image [px].
    """

    ids: np.ndarray
    image_points: np.ndarray
    object_points: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _as_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"board detection expects a uint8 image, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.ndim == 2:
        return img
    raise ValueError(f"expected an (H, W) or (H, W, 3) RGB image, got shape {img.shape}")


def detect_board(image: np.ndarray, spec: CharucoBoardSpec, min_corners: int = 6) -> BoardDetection:
    """Find the ChArUco corners of ``spec`` in an RGB (H, W, 3) or grayscale (H, W) uint8 image.

    Raises:
        BoardNotFoundError: no markers, fewer than ``min_corners`` corners, or corners all on one line.
    """
    gray = _as_gray(image)
    corners, ids, marker_corners, marker_ids = _detector(spec).detectBoard(gray)
    n_markers = 0 if marker_ids is None else len(marker_ids)
    n = 0 if ids is None else len(ids)
    if n < max(4, min_corners):
        raise BoardNotFoundError(
            f"ChArUco board {spec.squares_x}x{spec.squares_y} ({spec.dictionary}) not found: "
            f"{n_markers} markers and {n} corners detected, need at least {max(4, min_corners)} corners"
        )
    ids = ids.reshape(-1).astype(np.int32)
    img_pts = corners.reshape(-1, 2).astype(np.float64)
    obj_pts = spec.corner_points()[ids]
    # Corners on one line (one row or column of squares) make the pose ill-posed.
    centred = obj_pts[:, :2] - obj_pts[:, :2].mean(axis=0)
    if np.linalg.svd(centred, compute_uv=False)[-1] < 1e-3 * spec.square_length_m:
        raise BoardNotFoundError(f"the {n} detected board corners are collinear; show more of the board")
    h, w = gray.shape[:2]
    return BoardDetection(ids, img_pts, obj_pts, (int(w), int(h)))


__all__ = [
    "BoardDetection",
    "BoardPrint",
    "CharucoBoardSpec",
    "detect_board",
    "render_board",
    "write_board",
]
