"""The robot bridge's exception hierarchy: everything the package raises derives from `BridgeError`."""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ProtocolError",
    "BridgeTimeoutError",
    "HandshakeError",
    "BindRefusedError",
    "BackendError",
    "SafetyConfigError",
    "ServerFailedError",
    "LinkLostError",
]


class BridgeError(Exception):
    """Base class of every error raised by `robot_bridge`."""


class ProtocolError(BridgeError):
    """A wire message could not be accepted.

    Attributes:
        reason: a `robot_bridge.protocol.Reject` value naming why (never match on the text).
        detail: human-readable context for logs.
    """

    def __init__(self, reason: "object", detail: str = "") -> None:
        super().__init__(f"{getattr(reason, 'value', reason)}: {detail}" if detail else str(getattr(reason, "value", reason)))
        self.reason = reason
        self.detail = detail


class BridgeTimeoutError(BridgeError, TimeoutError):
    """A blocking bridge call did not complete within its timeout."""


class HandshakeError(BridgeError):
    """The server refused the handshake (for example a protocol version mismatch)."""


class BindRefusedError(BridgeError):
    """The server refused to bind: a non-loopback address without CURVE keys, or an unusable address."""


class BackendError(BridgeError):
    """A backend failed to connect, lost its robot, or reported an unrecoverable fault."""


class SafetyConfigError(BridgeError, ValueError):
    """Limits or safety settings are inconsistent (for example a scale factor outside (0, 1])."""


class ServerFailedError(BridgeError):
    """The server's control thread died; the original exception is chained as ``__cause__``."""


class LinkLostError(BridgeError):
    """The twin side lost the robot: no server answers, it stopped answering, or the streamer failed."""
