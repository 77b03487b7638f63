"""Calibration file format, intrinsics type, poses and the quality report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import (
    CalibrationFileError,
    CameraCalibration,
    CameraIntrinsics,
    MissingCameraError,
    QualityThresholds,
    SetupCalibration,
    as_pose,
    invert_pose,
    load_calibration,
    look_at,
    make_pose,
    matrix_to_rotvec,
    mean_pose,
    rigid_pose_error,
    quality_report,
    rotvec_to_matrix,
    save_calibration,
)

INTR = CameraIntrinsics(615.2, 614.8, 322.1, 241.7, 640, 480, "inverse_brown_conrady", (0.0, 0.0, 0.0, 0.0, 0.0))


def _setup() -> SetupCalibration:
    T = look_at([1.0, 0.2, 0.8], [0.5, 0.0, 0.0])
    return SetupCalibration(
        {
            "123456789012": CameraCalibration(
                "123456789012", INTR, T_world_camera=T, extrinsics_method="board",
                residuals={"reprojection_rms_px": 0.21, "n_views": 3},
            ),
            "987654321098": CameraCalibration(
                "987654321098", INTR, mount="wrist", T_flange_camera=make_pose(np.eye(3), [0.05, 0.0, 0.03]),
                extrinsics_method="hand_eye_eye_in_hand",
                residuals={"handeye_pos_consistency_mm": 0.4, "handeye_rot_consistency_deg": 0.05},
            ),
        },
        setup="lab",
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    setup = _setup()
    path = save_calibration(setup, tmp_path / f"calib{suffix}")
    back = load_calibration(path)
    assert back.serials == setup.serials and back.setup == "lab"
    for s in setup.serials:
        a, b = setup.camera(s), back.camera(s)
        assert a.intrinsics == b.intrinsics and a.mount == b.mount and a.residuals == b.residuals
        for T1, T2 in ((a.T_world_camera, b.T_world_camera), (a.T_flange_camera, b.T_flange_camera)):
            assert (T1 is None) == (T2 is None)
            if T1 is not None:
                np.testing.assert_array_equal(T1, T2)
    if suffix == ".json":
        assert json.loads(path.read_text())["format"] == "realsim-calibration"


def test_missing_serial_and_bad_files(tmp_path):
    setup = _setup()
    with pytest.raises(MissingCameraError, match="'000' .*calibrated serials: \\['123456789012', '987654321098'\\]"):
        setup.camera("000")
    with pytest.raises(CalibrationFileError, match="does not exist"):
        load_calibration(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: something-else\nversion: 1\n")
    with pytest.raises(CalibrationFileError, match="format"):
        load_calibration(bad)
    bad.write_text("format: realsim-calibration\nversion: 99\n")
    with pytest.raises(CalibrationFileError, match="version 99"):
        load_calibration(bad)
    data = setup.to_dict()
    data["cameras"]["123456789012"]["T_world_camera"][0][0] = 5.0  # not a rotation
    bad.write_text(json.dumps(data))
    with pytest.raises(CalibrationFileError, match="rotation"):
        load_calibration(bad)
    data = setup.to_dict()
    data["cameras"]["123456789012"]["typo"] = 1
    bad.write_text(json.dumps(data))
    with pytest.raises(CalibrationFileError, match="typo"):
        load_calibration(bad)


def test_wrist_camera_world_pose():
    cam = _setup().camera("987654321098")
    T_wf = make_pose(rotvec_to_matrix([0.0, 0.0, np.pi / 2]), [0.4, 0.1, 0.5])
    np.testing.assert_allclose(cam.world_pose(T_wf)[:3, 3], [0.4, 0.15, 0.53], atol=1e-12)
    with pytest.raises(CalibrationFileError, match="T_world_flange"):
        cam.world_pose()


def test_intrinsics_type():
    assert INTR.K.shape == (3, 3) and INTR.K[0, 2] == pytest.approx(322.1)
    assert CameraIntrinsics.from_dict(INTR.to_dict()) == INTR
    half = INTR.scaled(320, 240)
    assert half.fx == pytest.approx(INTR.fx / 2) and half.cx == pytest.approx((INTR.cx + 0.5) / 2 - 0.5)
    uv = INTR.project(np.array([[0.0, 0.0, 1.0], [0.1, -0.05, 0.5]]))
    np.testing.assert_allclose(uv[1], [INTR.fx * 0.2 + INTR.cx, INTR.fy * -0.1 + INTR.cy])
    np.testing.assert_array_equal(INTR.opencv_distortion(), np.zeros(5))  # zero inverse model is fine
    with pytest.raises(ValueError, match="not OpenCV"):
        CameraIntrinsics(1, 1, 0, 0, 2, 2, "inverse_brown_conrady", (0.1, 0, 0, 0, 0)).opencv_distortion()
    with pytest.raises(ValueError, match="positive"):
        CameraIntrinsics(-1.0, 1.0, 0.0, 0.0, 2, 2)
    with pytest.raises(ValueError, match="unknown distortion"):
        CameraIntrinsics(1.0, 1.0, 0.0, 0.0, 2, 2, "fisheye??")


def test_pose_helpers():
    rng = np.random.default_rng(1)
    for _ in range(20):
        r = rng.normal(size=3)
        r *= rng.uniform(0, np.pi - 1e-3) / np.linalg.norm(r)
        R = rotvec_to_matrix(r)
        np.testing.assert_allclose(matrix_to_rotvec(R), r, atol=1e-9)
        T = make_pose(R, rng.normal(size=3))
        np.testing.assert_allclose(T @ invert_pose(T), np.eye(4), atol=1e-12)
    dt, dr = rigid_pose_error(make_pose(rotvec_to_matrix([0, 0, 0.01]), [0.001, 0, 0]), np.eye(4))
    assert dt == pytest.approx(0.001) and dr == pytest.approx(0.01)
    m = mean_pose([make_pose(rotvec_to_matrix([0, 0, a]), [a, 0, 0]) for a in (-0.1, 0.1)])
    np.testing.assert_allclose(m, np.eye(4), atol=1e-12)
    T = look_at([1, 0, 1], [0, 0, 0])
    np.testing.assert_allclose(T[:3, 2], np.array([-1, 0, -1]) / np.sqrt(2))
    with pytest.raises(ValueError, match="4x4"):
        as_pose(np.eye(3))


def test_quality_report():
    setup = _setup()
    rep = quality_report(setup)
    assert rep.ok and "calibration OK" in rep.format()
    strict = quality_report(setup, QualityThresholds(max_reprojection_rms_px=0.1))
    assert not strict.ok and "FAIL" in strict.format()
    no_ext = setup.with_camera(CameraCalibration("555", INTR))
    rep = quality_report(no_ext)
    assert not rep.ok and any("555" in p and "T_world_camera" in p for p in rep.problems)


def test_look_at_gives_an_upright_opencv_camera() -> None:
    import numpy as np

    from calibration import look_at

    T = look_at(np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.0]))
    x, y, z = T[:3, 0], T[:3, 1], T[:3, 2]
    np.testing.assert_allclose(z, -np.array([1.0, 0.0, 0.5]) / np.linalg.norm([1.0, 0.0, 0.5]), atol=1e-12)
    assert y[2] < 0  # image down points away from the world's up
    np.testing.assert_allclose(x, [0.0, 1.0, 0.0], atol=1e-12)  # looking along -x, image right is +y
    np.testing.assert_allclose(np.linalg.det(T[:3, :3]), 1.0, atol=1e-12)
