"""A ROS 1 node that plays franka_ros_interface's controller side with a `SimFranka` arm.

It subscribes to the joint commands and the command timeout, and publishes
``custom_franka_state_controller/joint_states`` and ``robot_state`` as the robot PC would, so the
franka_ros backend can be exercised against a real rosmaster without a robot::

    ROS_MASTER_URI=http://127.0.0.1:11311 python -m robot_bridge.backends.franka_ros_sim --summary /tmp/s.json

Its message classes come from ``--definitions`` (a folder laid out as ``robot_bridge/backends/msg``;
the project's tests pass the upstream text kept in ``tests/data/franka_ros_msgs``) for
``--franka-ros-version``, so a backend speaking another definition is refused by rospy as a real robot
PC would refuse it.

Error injection for tests: publish a ``std_msgs/String`` on ``<ns>/sim/inject_error`` naming a
franka_msgs/Errors field (or ``reflex`` for ROBOT_MODE_REFLEX); an empty string clears it. The node
writes a JSON summary of what it received to ``--summary`` every 0.1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from .franka_ros import PANDA_JOINT_NAMES, ROBOT_MODE_MOVE, ROBOT_MODE_REFLEX
from .sim import SimFranka

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--namespace", default="/franka_ros_interface")
    ap.add_argument("--state-rate-hz", type=float, default=500.0)
    ap.add_argument("--summary", type=Path, default=None)
    ap.add_argument("--duration-s", type=float, default=600.0, help="exit after this long [s]")
    ap.add_argument("--franka-ros-version", default="0.7.1", help="the franka_ros release this robot PC runs")
    ap.add_argument("--definitions", type=Path, default=None,
                    help="folder of .msg definitions laid out as robot_bridge/backends/msg (default: that one)")
    args = ap.parse_args(argv)

    import rospy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, String

    from ._ros_msgs import MSG_DIR, message_classes

    classes = message_classes(args.franka_ros_version, args.definitions or MSG_DIR)
    JointCommand, RobotState = classes["franka_core_msgs/JointCommand"], classes["franka_core_msgs/RobotState"]
    ns = args.namespace.rstrip("/")
    rospy.init_node("franka_ros_interface_sim", anonymous=False, disable_signals=True)

    arm = SimFranka()
    lock = threading.Lock()
    s = {"n_commands": 0, "modes": [], "bad_names": 0, "timeout_s": None, "n_timeouts": 0,
         "max_abs_velocity": 0.0, "last_position": None, "q": None, "error": ""}
    last_cmd = [0.0]
    target = [arm.q_rad, np.zeros(7)]

    def on_command(msg) -> None:
        with lock:
            s["n_commands"] += 1
            if msg.mode not in s["modes"]:
                s["modes"].append(msg.mode)
            if list(msg.names) != list(PANDA_JOINT_NAMES) or len(msg.position) != 7:
                s["bad_names"] += 1
                return
            vel = np.array(msg.velocity) if len(msg.velocity) == 7 else np.zeros(7)
            s["max_abs_velocity"] = max(s["max_abs_velocity"], float(np.abs(vel).max()))
            s["last_position"] = list(msg.position)
            if not s["error"]:
                target[0], target[1] = np.array(msg.position), vel
            last_cmd[0] = time.monotonic()

    def on_timeout(msg) -> None:
        with lock:
            s["timeout_s"] = msg.data

    def on_inject(msg) -> None:
        with lock:
            s["error"] = msg.data

    rospy.Subscriber(f"{ns}/motion_controller/arm/joint_commands", JointCommand, on_command, queue_size=1,
                     tcp_nodelay=True)
    rospy.Subscriber(f"{ns}/motion_controller/arm/joint_command_timeout", Float64, on_timeout)
    rospy.Subscriber(f"{ns}/sim/inject_error", String, on_inject)
    js_pub = rospy.Publisher(f"{ns}/custom_franka_state_controller/joint_states", JointState, queue_size=1,
                             tcp_nodelay=True)
    rs_pub = rospy.Publisher(f"{ns}/custom_franka_state_controller/robot_state", RobotState, queue_size=1)

    names = list(PANDA_JOINT_NAMES) + ["panda_finger_joint1", "panda_finger_joint2"]
    period = 1.0 / args.state_rate_hz
    t_start = t_model = time.monotonic()
    t_summary = 0.0
    holding = False
    k = 0
    while not rospy.is_shutdown() and time.monotonic() - t_start < args.duration_s:
        now = time.monotonic()
        with lock:
            timeout = s["timeout_s"]
            if timeout is not None and now - last_cmd[0] > timeout and s["n_commands"]:
                if not holding:  # the controller's own timeout: hold where the arm is
                    s["n_timeouts"] += 1
                    target[0], target[1] = arm.q_rad, np.zeros(7)
                    holding = True
            else:
                holding = False
            q_cmd, dq_cmd, error = target[0], target[1], s["error"]
        while t_model < now:
            arm.step(q_cmd, dq_cmd)
            t_model += arm.config.dt_s
        js = JointState(name=names, position=arm.q_rad.tolist() + [0.04, 0.04],
                        velocity=arm.dq_rad_s.tolist() + [0.0, 0.0], effort=arm.tau_nm.tolist() + [0.0, 0.0])
        js.header.stamp = rospy.Time.from_sec(time.time())
        js_pub.publish(js)
        if k % 10 == 0:
            rs = RobotState(robot_mode=ROBOT_MODE_REFLEX if error == "reflex" else ROBOT_MODE_MOVE)
            if error and error != "reflex":
                setattr(rs.current_errors, error, True)
            rs_pub.publish(rs)
        k += 1
        if args.summary is not None and now - t_summary > 0.1:
            t_summary = now
            with lock:
                s["q"] = arm.q_rad.tolist()
                tmp = args.summary.with_suffix(".tmp")
                tmp.write_text(json.dumps(s))
            os.replace(tmp, args.summary)
        time.sleep(max(0.0, period - (time.monotonic() - now)))
    rospy.signal_shutdown("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
