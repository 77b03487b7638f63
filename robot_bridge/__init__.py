"""realsim's robot bridge: the wire protocol, the twin-side client, the robot-side server with its
safety layer, and the robot backends (``sim``, ``franka_ros``, ``libfranka``).

Importing this package loads neither rospy nor libfranka; backends are created by name through
`robot_bridge.backends.make_backend`. See ``robot_bridge/design.md`` for the safety checks.
"""

from ._errors import (
    BackendError,
    BindRefusedError,
    BridgeError,
    BridgeTimeoutError,
    HandshakeError,
    ProtocolError,
    SafetyConfigError,
    ServerFailedError,
)
from .backends import Backend, BackendCommand, BackendState, make_backend
from .client import BridgeClient, ClientConfig, ClientStats
from .clock import ClockSync
from .protocol import PROTOCOL_VERSION, ErrorFlag, JointState, JointTarget, Mode, Reject
from .safety import FRANKA_PANDA_LIMITS, JointLimits, SafetyConfig, effective_limits
from .server import RobotServer, ServerConfig, ServerStats, bind_is_loopback

__all__ = [
    "BridgeError", "ProtocolError", "BridgeTimeoutError", "HandshakeError", "BindRefusedError",
    "BackendError", "SafetyConfigError", "ServerFailedError",
    "Backend", "BackendCommand", "BackendState", "make_backend",
    "BridgeClient", "ClientConfig", "ClientStats", "ClockSync",
    "PROTOCOL_VERSION", "ErrorFlag", "JointState", "JointTarget", "Mode", "Reject",
    "FRANKA_PANDA_LIMITS", "JointLimits", "SafetyConfig", "effective_limits",
    "RobotServer", "ServerConfig", "ServerStats", "bind_is_loopback",
]
