"""`realsim calibrate` end to end on synthetic board images: board, extrinsics, hand-eye, check."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

cv2 = pytest.importorskip("cv2")

from calibration import (  # noqa: E402
    CameraCalibration,
    CameraIntrinsics,
    CharucoBoardSpec,
    SetupCalibration,
    invert_pose,
    load_calibration,
    look_at,
    make_pose,
    rigid_pose_error,
    render_board_view,
    rotvec_to_matrix,
    save_calibration,
    synthetic_hand_eye_views,
)
from launch.cli import main  # noqa: E402

INTR = CameraIntrinsics(610.0, 610.0, 319.5, 239.5, 640, 480)


def _write_rgb(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_board_extrinsics_check(tmp_path, capsys):
    assert main(["calibrate", "board", "--out", str(tmp_path / "b"), "--squares", "9", "6",
                 "--square-mm", "50", "--marker-mm", "37"]) == 0
    spec = CharucoBoardSpec.load(tmp_path / "b.yaml")
    assert spec.squares_x == 9 and spec.square_length_m == pytest.approx(0.05)
    calib = tmp_path / "lab.yaml"
    save_calibration(SetupCalibration({"CAM1": CameraCalibration("CAM1", INTR)}, setup="lab"), calib)
    T_wc = look_at([0.8, 0.25, 0.6], [0.45, 0.0, 0.0])
    rv = np.array([np.pi, 0.0, 0.0])
    T_wb = make_pose(rotvec_to_matrix(rv), [0.225, 0.15, 0.0])
    for i in range(2):
        _write_rgb(tmp_path / f"v{i}.png", render_board_view(spec, INTR, invert_pose(T_wc) @ T_wb, noise_std=1.0,
                                                             rng=np.random.default_rng(i)))
    pose_args = [str(x) for x in (0.225, 0.15, 0.0, *rv)]
    rc = main(["calibrate", "extrinsics", "--calibration", str(calib), "--serial", "CAM1", "--board", str(tmp_path / "b.yaml"),
               "--board-pose", *pose_args, "--images", str(tmp_path / "v*.png")])
    assert rc == 0
    cam = load_calibration(calib).camera("CAM1")
    dt, dr = rigid_pose_error(cam.T_world_camera, T_wc)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    assert cam.extrinsics_method == "board" and cam.residuals["n_views"] == 2
    assert main(["calibrate", "check", "--calibration", str(calib)]) == 0
    assert "calibration OK" in capsys.readouterr().out
    assert main(["calibrate", "check", "--calibration", str(calib), "--max-rms-px", "0.001"]) == 1
    # New images of the board at the same pose agree with the file; a moved camera does not.
    check = ["calibrate", "check", "--calibration", str(calib), "--serial", "CAM1", "--board", str(tmp_path / "b.yaml"),
             "--board-pose", *pose_args, "--images"]
    assert main(check + [str(tmp_path / "v0.png")]) == 0
    T_moved = look_at([0.81, 0.25, 0.6], [0.45, 0.0, 0.0])  # 1 cm to the side
    _write_rgb(tmp_path / "moved.png", render_board_view(spec, INTR, invert_pose(T_moved) @ T_wb))
    assert main(check + [str(tmp_path / "moved.png")]) == 1
    assert "the camera or the board moved" in capsys.readouterr().out
    # A blank image and an unknown serial are clear errors, not tracebacks.
    _write_rgb(tmp_path / "blank.png", np.full((480, 640, 3), 128, np.uint8))
    rc = main(["calibrate", "extrinsics", "--calibration", str(calib), "--serial", "CAM1", "--board", str(tmp_path / "b.yaml"),
               "--board-pose", *pose_args, "--images", str(tmp_path / "blank.png")])
    err = capsys.readouterr().err
    assert rc == 1 and "not found" in err and "at least one view" in err


def test_hand_eye_from_data_folder(tmp_path, capsys):
    spec = CharucoBoardSpec(squares_x=7, squares_y=5, square_length_m=0.03, marker_length_m=0.022)
    (tmp_path / "board.yaml").write_text(yaml.safe_dump({"board": spec.to_dict()}))
    ds = synthetic_hand_eye_views(spec, INTR, "eye_in_hand", 12, seed=5)
    data = tmp_path / "he"
    data.mkdir()
    views = []
    for i, (img, T) in enumerate(zip(ds.images, ds.T_world_flange, strict=False)):
        _write_rgb(data / f"view_{i:03d}.png", img)
        views.append({"image": f"view_{i:03d}.png", "T_world_flange": T.tolist()})
    (data / "views.yaml").write_text(yaml.safe_dump({"mode": "eye_in_hand", "serial": "WRIST", "views": views}))
    calib = tmp_path / "lab.json"
    save_calibration(SetupCalibration({"WRIST": CameraCalibration("WRIST", INTR)}), calib)
    assert main(["calibrate", "hand-eye", "--calibration", str(calib), "--board", str(tmp_path / "board.yaml"),
                 "--data", str(data)]) == 0
    cam = load_calibration(calib).camera("WRIST")
    assert cam.mount == "wrist" and cam.extrinsics_method == "hand_eye_eye_in_hand"
    dt, dr = rigid_pose_error(cam.T_flange_camera, ds.T_flange_camera)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    assert main(["calibrate", "check", "--calibration", str(calib)]) == 0
    # Missing serial in the calibration file: named in the error.
    rc = main(["calibrate", "hand-eye", "--calibration", str(calib), "--board", str(tmp_path / "board.yaml"),
               "--data", str(data), "--serial", "NOPE"])
    assert rc == 1 and "NOPE" in capsys.readouterr().err


def test_intrinsics_from_a_live_source(tmp_path):
    cams = tmp_path / "cams.yaml"
    cams.write_text("kind: synthetic\nmax_frame_age_s: 0.5\nsynthetic: {serials: [CAM2], pattern_fps_hz: 30, width_px: 64, height_px: 48}\n")
    calib = tmp_path / "lab.yaml"
    assert main(["calibrate", "intrinsics", "--calibration", str(calib), "--serial", "CAM2", "--from-device",
                 "--source-config", str(cams)]) == 0
    cam = load_calibration(calib).camera("CAM2")
    assert (cam.intrinsics.width, cam.intrinsics.height) == (64, 48) and cam.intrinsics_source == "device"
    assert main(["calibrate", "check", "--calibration", str(calib)]) == 1  # no extrinsics yet
