"""Hand-eye capture end to end: the robot bridge's simulated Franka is driven through joint
configurations by `realsim calibrate hand-eye-capture`, a wrist camera's images arrive over the camera
stream (rendered from the simulated arm's true pose), and the calibration recovers T_flange_camera."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

pytest.importorskip("cv2")
pytest.importorskip("zmq")

from calibration import (  # noqa: E402
    CameraCalibration,
    CameraIntrinsics,
    CharucoBoardSpec,
    SetupCalibration,
    invert_pose,
    load_calibration,
    make_pose,
    rigid_pose_error,
    render_board_view,
    rotvec_to_matrix,
    save_calibration,
)
from calibration._render import _board_fully_visible  # noqa: E402
from launch.cli import main  # noqa: E402
from robot_bridge import RobotServer, ServerConfig  # noqa: E402
from robot_bridge.backends.sim import PANDA_HOME_Q_RAD, SimBackend  # noqa: E402
from twin.cameras import CameraFrame, FramePublisher, PublisherConfig  # noqa: E402
from twin.franka import PandaKinematics  # noqa: E402

INTR = CameraIntrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
SPEC = CharucoBoardSpec(squares_x=7, squares_y=5, square_length_m=0.04, marker_length_m=0.03)
T_FLANGE_CAMERA = make_pose(rotvec_to_matrix([0.0, 0.0, -np.pi / 4]), [0.05, -0.02, 0.04])
# Face up on the table below the arm's home pose (board z points down, into the table).
T_WORLD_BOARD = make_pose(rotvec_to_matrix([np.pi, 0.0, 0.0]), [0.307 - 0.14, 0.10, 0.0])


def _joint_targets(kin: PandaKinematics, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    home = np.array(PANDA_HOME_Q_RAD)
    out = []
    while len(out) < n:
        q = home + rng.uniform(-0.25, 0.25, 7) * np.array([1, 1, 1, 1, 2, 1, 2])
        T_cb = invert_pose(kin.flange_pose(q) @ T_FLANGE_CAMERA) @ T_WORLD_BOARD
        if _board_fully_visible(SPEC, INTR, T_cb, margin_px=30):
            out.append(q)
    return out


def test_capture_and_calibrate_eye_in_hand_through_the_bridge(tmp_path):
    kin = PandaKinematics()
    backend = SimBackend()
    server = RobotServer(backend, ServerConfig(bind_address="tcp://127.0.0.1:0")).start()
    pub = FramePublisher(PublisherConfig(endpoint="tcp://127.0.0.1:0"))
    stop = threading.Event()

    def world() -> None:  # the simulated workspace: renders what the wrist camera sees
        rng = np.random.default_rng(0)
        while not stop.is_set():
            q = np.array(backend.read_state().q_rad)
            T_cb = invert_pose(kin.flange_pose(q) @ T_FLANGE_CAMERA) @ T_WORLD_BOARD
            t = time.monotonic_ns()
            rgb = render_board_view(SPEC, INTR, T_cb, noise_std=1.5, blur_sigma_px=0.6, supersample=2, rng=rng)
            pub.publish({"WRIST": CameraFrame("WRIST", rgb, None, INTR, None, t / 1e6, t, 0)})
            stop.wait(0.03)

    th = threading.Thread(target=world, daemon=True)
    th.start()
    try:
        (tmp_path / "cams.yaml").write_text(yaml.safe_dump(
            {"kind": "stream", "max_frame_age_s": 0.5, "stream": {"endpoint": pub.endpoint, "serials": ["WRIST"]}}))
        (tmp_path / "joints.yaml").write_text(yaml.safe_dump({"q_rad": [q.tolist() for q in _joint_targets(kin, 6)]}))
        (tmp_path / "board.yaml").write_text(yaml.safe_dump({"board": SPEC.to_dict()}))
        calib = tmp_path / "lab.yaml"
        save_calibration(SetupCalibration({"WRIST": CameraCalibration("WRIST", INTR)}), calib)
        rc = main(["calibrate", "hand-eye-capture", "--bridge", server.endpoint, "--source-config", str(tmp_path / "cams.yaml"),
                   "--serial", "WRIST", "--joints", str(tmp_path / "joints.yaml"), "--data", str(tmp_path / "he"),
                   "--mode", "eye_in_hand", "--max-speed-rad-s", "0.8", "--settle-s", "0.2",
                   "--calibration", str(calib), "--board", str(tmp_path / "board.yaml")])
    finally:
        stop.set()
        th.join(timeout=5)
        pub.close()
        server.stop()
    assert rc == 0
    views = yaml.safe_load((tmp_path / "he" / "views.yaml").read_text())["views"]
    assert len(views) == 6 and all(len(v["q_rad"]) == 7 for v in views)
    cam = load_calibration(calib).camera("WRIST")
    dt, dr = rigid_pose_error(cam.T_flange_camera, T_FLANGE_CAMERA)
    assert dt < 2e-3 and np.degrees(dr) < 0.2
    assert cam.residuals["handeye_pos_consistency_mm"] < 2.0
