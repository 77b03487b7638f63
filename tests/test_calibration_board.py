"""ChArUco board: printable files at exact scale, detection, intrinsics from synthetic views."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

cv2 = pytest.importorskip("cv2")

from calibration import (  # noqa: E402
    BoardNotFoundError,
    CameraIntrinsics,
    CharucoBoardSpec,
    InsufficientDataError,
    detect_board,
    estimate_intrinsics,
    look_at,
    make_pose,
    render_board_view,
    rotvec_to_matrix,
    write_board,
)

SPEC = CharucoBoardSpec(squares_x=7, squares_y=5, square_length_m=0.04, marker_length_m=0.03)


def test_printable_board_has_exact_physical_scale(tmp_path):
    from PIL import Image

    out = write_board(SPEC, tmp_path / "board", dpi=300, margin_m=0.01)
    assert out.png_path.is_file() and out.pdf_path.is_file() and out.params_path.is_file()
    # PNG: pixel density stored; a square is a whole number of pixels of exactly 40 mm.
    img = Image.open(out.png_path)
    dpi = img.info["dpi"][0]
    assert dpi == pytest.approx(out.dpi, rel=1e-4)
    px_per_square = SPEC.square_length_m * out.px_per_m
    assert px_per_square == pytest.approx(round(px_per_square))
    assert img.size[0] / dpi * 0.0254 == pytest.approx(SPEC.size_m[0] + 0.02, abs=1e-4)
    # PDF page (points, 1/72 inch) is the board plus margins.
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", out.pdf_path.read_bytes())
    w_m, h_m = (float(v) / 72 * 0.0254 for v in box.groups())
    assert w_m == pytest.approx(0.30, abs=1e-5) and h_m == pytest.approx(0.22, abs=1e-5)
    params = yaml.safe_load(out.params_path.read_text())
    assert CharucoBoardSpec.from_dict(params["board"]) == SPEC
    assert CharucoBoardSpec.load(out.params_path) == SPEC
    # The printed board is detected, corners where the board geometry puts them.
    det = detect_board(cv2.imread(str(out.png_path), cv2.IMREAD_GRAYSCALE), SPEC)
    assert len(det) == SPEC.num_corners
    expected = (det.object_points[:, :2] + 0.01) * out.px_per_m - 0.5
    np.testing.assert_allclose(det.image_points, expected, atol=0.1)


def test_no_board_visible_is_a_clear_error():
    blank = np.full((240, 320, 3), 128, np.uint8)
    with pytest.raises(BoardNotFoundError, match="not found: 0 markers"):
        detect_board(blank, SPEC)
    other = CharucoBoardSpec(squares_x=5, squares_y=4, square_length_m=0.04, marker_length_m=0.03, dictionary="DICT_4X4_50")
    intr = CameraIntrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    img = render_board_view(other, intr, make_pose(np.eye(3), [-0.1, -0.08, 0.5]))
    with pytest.raises(BoardNotFoundError):
        detect_board(img, SPEC)  # a different board's markers do not count
    with pytest.raises(ValueError, match="marker_length_m"):
        CharucoBoardSpec(square_length_m=0.03, marker_length_m=0.04)


def test_intrinsics_from_board_views():
    truth = CameraIntrinsics(600.0, 602.0, 322.0, 236.0, 640, 480)
    rng = np.random.default_rng(3)
    dets = []
    centre = make_pose(np.eye(3), [-SPEC.size_m[0] / 2, -SPEC.size_m[1] / 2, 0.0])
    while len(dets) < 8:
        eye = rng.uniform([-0.15, -0.1, -0.55], [0.15, 0.1, -0.4])
        T_bc = look_at(eye, rng.uniform(-0.03, 0.03, 3) * [1, 1, 0], up=(0, -1, 0))
        T_cb = np.linalg.inv(T_bc @ make_pose(rotvec_to_matrix([0, 0, rng.uniform(-0.3, 0.3)]), np.zeros(3))) @ centre
        try:
            dets.append(detect_board(render_board_view(SPEC, truth, T_cb, noise_std=1.0, rng=rng), SPEC, min_corners=12))
        except BoardNotFoundError:
            continue
    res = estimate_intrinsics(dets)
    assert res.reprojection_rms_px < 0.3
    assert res.intrinsics.fx == pytest.approx(truth.fx, rel=0.01)
    assert res.intrinsics.fy == pytest.approx(truth.fy, rel=0.01)
    assert res.intrinsics.cx == pytest.approx(truth.cx, abs=4.0)
    assert res.intrinsics.cy == pytest.approx(truth.cy, abs=4.0)
    with pytest.raises(InsufficientDataError, match="at least 5 views"):
        estimate_intrinsics(dets[:2])
