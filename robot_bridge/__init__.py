"""realsim's robot bridge: the wire protocol, the twin-side client, the robot-side server with its
safety layer and motion limiter, and the robot backends (``sim``, ``franka_ros``, ``libfranka``).

Importing this package loads only its errors and `robot_bridge.limits` (numpy); the protocol, client,
server and backends load on first use (``from robot_bridge import RobotServer`` works as before), so
the twin can use the robot's limits without loading zmq. Backends are created by name through
`robot_bridge.backends.make_backend`; rospy and libfranka load only when such a backend connects. See
``robot_bridge/design.md`` for the safety layer.
"""

from __future__ import annotations

import importlib

from ._errors import (
    BackendError,
    BindRefusedError,
    BridgeError,
    BridgeTimeoutError,
    HandshakeError,
    LinkLostError,
    ProtocolError,
    SafetyConfigError,
    ServerFailedError,
)
from .limits import FRANKA_PANDA_LIMITS, PANDA_HOME_Q_RAD, JointLimits, SafetyConfig, effective_limits

_LAZY = {
    "Backend": "backends", "BackendCommand": "backends", "BackendState": "backends", "make_backend": "backends",
    "BridgeClient": "client", "ClientConfig": "client", "ClientStats": "client", "ClockSync": "clock",
    "PROTOCOL_VERSION": "protocol", "ErrorFlag": "protocol", "JointState": "protocol", "JointTarget": "protocol",
    "Mode": "protocol", "Reject": "protocol", "RobotServer": "server", "ServerConfig": "server",
    "ServerStats": "server", "is_loopback_endpoint": "endpoints", "JointStreamer": "streamer",
}

__all__ = [
    "BridgeError", "ProtocolError", "BridgeTimeoutError", "HandshakeError", "BindRefusedError",
    "BackendError", "SafetyConfigError", "ServerFailedError", "LinkLostError",
    "FRANKA_PANDA_LIMITS", "PANDA_HOME_Q_RAD", "JointLimits", "SafetyConfig", "effective_limits", *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robot_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
