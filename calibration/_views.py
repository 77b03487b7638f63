"""The hand-eye views folder, and the check of a stored calibration against new images of a board.

A views folder holds one RGB image per robot pose and ``views.yaml``::

    mode: eye_to_hand            # or eye_in_hand
    serial: "123456789"          # the camera
    views:
      - image: view_000.png
        q_rad: [7 joint positions, rad]            # and/or
        T_world_flange: [[4 x 4]]                  # the flange pose in the robot base frame [m]

A view with only ``q_rad`` needs the robot's forward kinematics (``flange_pose``), which the caller
passes in (this package does not depend on the twin).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._errors import BoardNotFoundError, InsufficientDataError

__all__ = ["HandEyeViews", "board_reprojection_rms", "load_hand_eye_views", "write_views_file"]

VIEWS_FILE = "views.yaml"


@dataclass
class HandEyeViews:
    """The views of a folder, detected: flange poses ``T_world_flange`` [4, 4] and board detections,
    one per usable view, plus the images where no board was found (skipped)."""

    mode: str
    serial: str
    T_world_flange: list[np.ndarray] = field(default_factory=list)
    detections: list = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def write_views_file(folder: Path, mode: str, serial: str, views: Sequence[dict]) -> Path:
    """Write (or rewrite) ``views.yaml`` of a views folder (``views``: dicts as in the module docstring)."""
    import yaml

    path = Path(folder) / VIEWS_FILE
    path.write_text(yaml.safe_dump({"mode": mode, "serial": serial, "views": list(views)}))
    return path


def load_hand_eye_views(folder: Path, spec, read_rgb: Callable[[Path], np.ndarray],  # noqa: ANN001 - CharucoBoardSpec
                        flange_pose: Callable[[np.ndarray], np.ndarray] | None = None,
                        mode: str | None = None, serial: str | None = None) -> HandEyeViews:
    """Read a views folder and detect the board in each image (views without the board are skipped).

    Args:
        read_rgb: loads an image file as RGB uint8 [H, W, 3].
        flange_pose: ``q_rad`` [7] -> ``T_world_flange`` [4, 4] (needed for views given by joints only).
        mode, serial: override the folder's.

    Raises:
        ValueError: no ``views.yaml``, or no camera named.
        InsufficientDataError: a view with neither a flange pose nor joints (or joints without
            ``flange_pose``).
    """
    import yaml

    from ._board import detect_board

    folder = Path(folder)
    meta_path = folder / VIEWS_FILE
    if not meta_path.is_file():
        raise ValueError(f"{meta_path} does not exist (see `realsim calibrate --help`)")
    meta = yaml.safe_load(meta_path.read_text()) or {}
    out = HandEyeViews(mode=mode or meta.get("mode", "eye_to_hand"), serial=str(serial or meta.get("serial", "")))
    if not out.serial:
        raise ValueError("name the camera: --serial or 'serial' in views.yaml")
    for i, v in enumerate(meta.get("views") or []):
        try:
            det = detect_board(read_rgb(folder / v["image"]), spec)
        except BoardNotFoundError as exc:
            out.skipped.append(f"view {i} ({v.get('image')}): {exc}")
            continue
        if "T_world_flange" in v:
            T = np.asarray(v["T_world_flange"], dtype=np.float64)
        elif "q_rad" in v and flange_pose is not None:
            T = flange_pose(np.asarray(v["q_rad"], dtype=np.float64))
        else:
            raise InsufficientDataError(f"view {i}: needs T_world_flange or q_rad")
        out.T_world_flange.append(T)
        out.detections.append(det)
    return out


def board_reprojection_rms(camera, spec, T_world_board: np.ndarray, images: Sequence[np.ndarray]) -> tuple[float, int]:  # noqa: ANN001
    """Reproject a board at its known world pose through a stored camera calibration into new images:
    (RMS distance to the detected corners [px], views with the board). A camera (or board) that moved
    since calibration shows as a large RMS.

    Raises:
        ValueError: the board was found in none of the images.
    """
    from ._board import detect_board
    from ._estimate import reprojection_residuals
    from ._pose import invert_pose

    T_camera_board = invert_pose(camera.world_pose()) @ np.asarray(T_world_board, dtype=np.float64)
    dets = []
    for img in images:
        try:
            dets.append(detect_board(img, spec))
        except BoardNotFoundError:
            continue
    if not dets:
        raise ValueError("the board was found in none of the images")
    res = np.concatenate([reprojection_residuals(d, camera.intrinsics, T_camera_board) for d in dets])
    return float(np.sqrt(np.mean(np.sum(res**2, axis=1)))), len(dets)
