"""Backend for franka_ros_interface (ROS 1) through rospy.

Talks to the controllers franka_ros_interface runs on the robot PC:

- publishes ``franka_core_msgs/JointCommand`` (IMPEDANCE_MODE with positions and velocities, or
  POSITION_MODE) on ``<ns>/motion_controller/arm/joint_commands``;
- publishes the controller's command timeout [s] (``std_msgs/Float64``, latched) on
  ``<ns>/motion_controller/arm/joint_command_timeout``, so the robot stops on its own if the bridge dies;
- subscribes to ``<ns>/custom_franka_state_controller/joint_states`` (``sensor_msgs/JointState``) for
  q [rad], dq [rad/s] and measured torques [N m], and to ``<ns>/custom_franka_state_controller/robot_state``
  (``franka_core_msgs/RobotState``) for the robot mode and error flags, mapped to `ErrorFlag`.

franka_core_msgs classes are generated at run time from upstream's definitions for the robot's
franka_ros release (``franka_ros_version``; see `robot_bridge.backends._ros_msgs`). A RobotState whose
definition differs from the robot's has another MD5 sum and the robot PC refuses the subscription:
mode and error flags would never arrive. So `connect` refuses (with a warning naming the likely cause)
when no ``robot_state`` arrives within ``robot_state_timeout_s``, and a ``robot_state`` older than
``robot_state_stale_s`` raises STATE_STALE, which stops commanding.
rospy is imported on `connect`, never at package import.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._errors import BackendError, BridgeTimeoutError
from ..protocol import ErrorFlag
from .base import Backend, BackendCommand, BackendState

__all__ = ["FrankaRosConfig", "FrankaRosBackend", "errors_to_flags", "PANDA_JOINT_NAMES"]

log = logging.getLogger("robot_bridge.backends.franka_ros")

PANDA_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))

# franka_core_msgs/RobotState.robot_mode values
ROBOT_MODE_MOVE = 2
ROBOT_MODE_GUIDING = 3
ROBOT_MODE_REFLEX = 4
ROBOT_MODE_USER_STOPPED = 5
ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY = 6

_LIMIT_ERRORS = (
    "joint_position_limits_violation", "cartesian_position_limits_violation", "joint_velocity_violation",
    "cartesian_velocity_violation", "self_collision_avoidance_violation",
    "joint_motion_generator_position_limits_violation", "joint_motion_generator_velocity_limits_violation",
    "joint_motion_generator_velocity_discontinuity", "joint_motion_generator_acceleration_discontinuity",
)


@dataclass(frozen=True)
class FrankaRosConfig:
    """Topics and settings of the franka_ros_interface backend."""

    namespace: str = "/franka_ros_interface"
    command_topic: str = "motion_controller/arm/joint_commands"
    command_timeout_topic: str = "motion_controller/arm/joint_command_timeout"
    joint_states_topic: str = "custom_franka_state_controller/joint_states"
    robot_state_topic: str = "custom_franka_state_controller/robot_state"
    mode: Literal["impedance", "position"] = "impedance"
    command_timeout_s: float = 0.1  # the robot-side controller stops following after this silence [s]
    state_timeout_s: float = 0.1  # a joint state older than this raises STATE_STALE [s]
    franka_ros_version: str = "0.7.1"  # the robot's franka_ros release (0.2.0-0.8.x or 0.9.0-0.10.x)
    robot_state_timeout_s: float = 3.0  # connect refuses when no robot_state arrives within this [s]
    robot_state_stale_s: float = 0.5  # a robot_state older than this raises STATE_STALE [s]
    rate_hz: float = 1000.0  # command rate [Hz]
    node_name: str = "realsim_robot_bridge"
    joint_names: tuple[str, ...] = PANDA_JOINT_NAMES


def errors_to_flags(robot_mode: int, errors) -> int:
    """Map a RobotState's mode and ``current_errors`` (franka_msgs/Errors) to an `ErrorFlag` mask."""
    flags = ErrorFlag.NONE
    if robot_mode == ROBOT_MODE_REFLEX:
        flags |= ErrorFlag.REFLEX
    elif robot_mode == ROBOT_MODE_USER_STOPPED:
        flags |= ErrorFlag.USER_STOPPED
    elif robot_mode == ROBOT_MODE_GUIDING:
        flags |= ErrorFlag.GUIDING
    elif robot_mode == ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY:
        flags |= ErrorFlag.BACKEND_FAULT
    if errors is not None:
        active = [name for name in errors.__slots__ if getattr(errors, name)]
        if active:
            flags |= ErrorFlag.BACKEND_FAULT
            if any(name in _LIMIT_ERRORS for name in active):
                flags |= ErrorFlag.ROBOT_LIMIT
            if any("reflex" in name for name in active):
                flags |= ErrorFlag.REFLEX
    return int(flags)


class FrankaRosBackend(Backend):
    """rospy client of franka_ros_interface. ROS_MASTER_URI comes from the environment.

    Args:
        config: topics and settings.
    """

    name = "franka_ros"

    def __init__(self, config: FrankaRosConfig = FrankaRosConfig()) -> None:
        self.config = config
        self.rate_hz = config.rate_hz
        self._lock = threading.Lock()
        self._q: np.ndarray | None = None
        self._dq = np.zeros(7)
        self._tau: np.ndarray | None = None
        self._t_state_ns = 0
        self._t_robot_state_ns: int | None = None
        self._robot_flags = 0
        self._pub = self._timeout_pub = None
        self._subs: list = []
        self._msg = None
        self._names = list(config.joint_names)
        self.n_published = 0

    def _topic(self, name: str) -> str:
        return f"{self.config.namespace.rstrip('/')}/{name}"

    def connect(self, timeout_s: float = 10.0) -> None:
        try:
            import rospy
            from sensor_msgs.msg import JointState
            from std_msgs.msg import Float64
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise BackendError("franka_ros backend needs rospy (Debian python3-rospy)") from exc
        from ._ros_msgs import message_classes

        classes = message_classes(self.config.franka_ros_version)
        self._cmd_cls = classes["franka_core_msgs/JointCommand"]
        robot_state_cls = classes["franka_core_msgs/RobotState"]
        self._rospy = rospy
        if not rospy.core.is_initialized():
            rospy.init_node(self.config.node_name, anonymous=False, disable_signals=True)
        self._pub = rospy.Publisher(self._topic(self.config.command_topic), self._cmd_cls, queue_size=1,
                                    tcp_nodelay=True)
        self._timeout_pub = rospy.Publisher(self._topic(self.config.command_timeout_topic), Float64, latch=True,
                                            queue_size=1)
        self._subs = [
            rospy.Subscriber(self._topic(self.config.joint_states_topic), JointState, self._on_joint_state,
                             queue_size=1, tcp_nodelay=True),
            rospy.Subscriber(self._topic(self.config.robot_state_topic), robot_state_cls, self._on_robot_state,
                             queue_size=1, tcp_nodelay=True),
        ]
        self._timeout_pub.publish(Float64(self.config.command_timeout_s))
        mode = self._cmd_cls.IMPEDANCE_MODE if self.config.mode == "impedance" else self._cmd_cls.POSITION_MODE
        self._msg = self._cmd_cls(mode=mode, names=self._names)
        deadline = time.monotonic() + timeout_s
        robot_state_deadline = time.monotonic() + max(timeout_s, self.config.robot_state_timeout_s)
        while time.monotonic() < deadline:
            with self._lock:
                have_state = self._q is not None
            if have_state and self._pub.get_num_connections() > 0:
                break
            time.sleep(0.01)
        else:
            self.disconnect()
            raise BridgeTimeoutError(
                f"franka_ros: no joint state on {self._topic(self.config.joint_states_topic)} or no subscriber on "
                f"{self._topic(self.config.command_topic)} within {timeout_s} s")
        while self._t_robot_state_ns is None:
            if time.monotonic() > robot_state_deadline:
                self.disconnect()
                msg = (f"franka_ros: joint states arrive but no robot_state on {self._topic(self.config.robot_state_topic)} "
                       f"within {self.config.robot_state_timeout_s} s: without it reflexes and errors would go unnoticed, "
                       "so the backend will not follow. The usual cause is a franka_core_msgs/RobotState definition "
                       f"other than the robot's (this backend speaks franka_ros {self.config.franka_ros_version}; "
                       "set franka_ros.franka_ros_version to the robot's release)")
                log.warning(msg)
                raise BackendError(msg)
            time.sleep(0.01)

    def disconnect(self) -> None:
        for s in self._subs:
            s.unregister()
        self._subs = []
        for p in (self._pub, self._timeout_pub):
            if p is not None:
                p.unregister()
        self._pub = self._timeout_pub = None

    def _on_joint_state(self, msg) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        try:
            idx = [index[n] for n in self._names]
        except KeyError:
            return  # a joint_states message of some other group (e.g. the gripper)
        q = np.array([msg.position[i] for i in idx])
        dq = np.array([msg.velocity[i] for i in idx]) if len(msg.velocity) == len(msg.name) else np.zeros(7)
        tau = np.array([msg.effort[i] for i in idx]) if len(msg.effort) == len(msg.name) else None
        if not (np.isfinite(q).all() and np.isfinite(dq).all()):
            return
        with self._lock:
            self._q, self._dq, self._tau = q, dq, tau
            self._t_state_ns = time.monotonic_ns()

    def _on_robot_state(self, msg) -> None:
        flags = errors_to_flags(msg.robot_mode, msg.current_errors)
        with self._lock:
            self._robot_flags = flags
            self._t_robot_state_ns = time.monotonic_ns()

    def read_state(self) -> BackendState:
        now = time.monotonic_ns()
        with self._lock:
            if self._q is None:
                raise BackendError("franka_ros backend has no joint state (not connected)")
            flags = self._robot_flags
            if (now - self._t_state_ns) * 1e-9 > self.config.state_timeout_s:
                flags |= ErrorFlag.STATE_STALE
            if self._t_robot_state_ns is None or (now - self._t_robot_state_ns) * 1e-9 > self.config.robot_state_stale_s:
                flags |= ErrorFlag.STATE_STALE
            return BackendState(self._t_state_ns, self._q.copy(), self._dq.copy(),
                                None if self._tau is None else self._tau.copy(), int(flags))

    def command(self, cmd: BackendCommand) -> None:
        msg = self._msg
        msg.header.stamp = self._rospy.Time.from_sec(time.time())
        msg.header.seq += 1
        msg.position = cmd.q_rad.tolist()
        msg.velocity = cmd.dq_rad_s.tolist() if self.config.mode == "impedance" else []
        self._pub.publish(msg)
        self.n_published += 1
