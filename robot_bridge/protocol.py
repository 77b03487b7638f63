"""Wire protocol of the robot bridge: message types, a compact msgpack encoding, strict decoding.

Every message is one ZMQ frame holding a msgpack array::

    [version, type, seq, t_send_ns, field, field, ...]

- ``version`` is `PROTOCOL_VERSION`; any other value is rejected as `Reject.WRONG_VERSION`.
- ``seq`` is the sender's message counter, strictly increasing over one session (all message types
  share it), so the receiver can reject duplicates and reordered messages.
- ``t_send_ns`` is the sender's ``time.monotonic_ns()`` at send time [ns, sender clock]. Clocks of the
  two machines differ; `robot_bridge.clock.ClockSync` estimates the offset from the four timestamps of
  the handshake and of each heartbeat exchange (NTP style).

Joint vectors are 7 floats [rad] or [rad/s] in Franka joint order (joint 1 = base). A message is at
most `MAX_MESSAGE_BYTES` long; decoding never trusts the sender: sizes, types, array lengths and
finiteness are all checked and each failure raises `ProtocolError` with a `Reject` reason.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Union

from ._errors import ProtocolError  # noqa: F401 - raised by decode, reachable here as before

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "N_JOINTS",
    "MsgType",
    "Mode",
    "ErrorFlag",
    "Reject",
    "Hello",
    "Welcome",
    "JointTarget",
    "JointState",
    "Heartbeat",
    "HeartbeatReply",
    "Stop",
    "Recover",
    "ErrorReply",
    "RANGES",
    "Message",
    "encode",
    "decode",
    "peek_version",
]

PROTOCOL_VERSION = 2
"""Bumped on any change of layout or meaning; peers with another version are refused. Version 2 added
`Recover` and the ranges of `RANGES`."""

MAX_MESSAGE_BYTES = 1024
"""Largest valid message [bytes]. The largest legal message (a state) is about 400 bytes."""

N_JOINTS = 7

_MAX_U63 = (1 << 63) - 1
_MAX_NAME_CHARS = 64

RANGES: dict[str, tuple[float, float]] = {
    # Physically meaningful range of every numeric field (inclusive); a finite value outside it is
    # refused as `Reject.OUT_OF_RANGE`. The safety layer's own limits are tighter and checked apart.
    "rate_hz": (1.0, 1000.0),  # a client's target rate: at most the backend's 1 kHz [Hz]
    "q_rad": (-2.0 * math.pi, 2.0 * math.pi),  # any Franka joint position [rad]
    "dq_rad_s": (-10.0, 10.0),  # any Franka joint velocity (limits 2.2-2.6) [rad/s]
    "tau_nm": (-1000.0, 1000.0),  # measured joint torques (limits 12-87) [N m]
    "gripper_width_m": (0.0, 0.2),  # Franka Hand opens 0.08 m [m]
    "watchdog_timeout_s": (1e-3, 10.0),
    "max_message_age_s": (1e-3, 10.0),
    "resume_tolerance_rad": (0.0, 1.0),
}


class MsgType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    TARGET = 3
    STATE = 4
    HEARTBEAT = 5
    HEARTBEAT_REPLY = 6
    STOP = 7
    ERROR = 8
    RECOVER = 9


class Mode(enum.IntEnum):
    """Server mode reported in every `JointState`."""

    IDLE = 0  # no client session: nothing is commanded
    HOLD = 1  # holding a pose (after handshake, watchdog, or a rejected resume); waits for a close target
    FOLLOWING = 2  # tracking the client's targets
    STOPPED = 3  # explicit stop: holds until a new handshake
    ERROR = 4  # the backend reports a fault: nothing is commanded until it clears


class ErrorFlag(enum.IntFlag):
    """Bit mask of robot/backend conditions reported in every `JointState`."""

    NONE = 0
    BACKEND_FAULT = 1  # backend reports an error (e.g. libfranka control exception)
    REFLEX = 2  # robot in reflex mode (collision or limit reflex)
    USER_STOPPED = 4  # external activation device pressed
    STATE_STALE = 8  # the backend's measured state is older than expected
    COMMAND_GATE = 16  # the final command gate refused a command (a bug if ever seen)
    GUIDING = 32  # robot is in hand-guiding mode
    ROBOT_LIMIT = 64  # the robot reports a limit violation
    OUTSIDE_LIMITS = 128  # the measured pose is outside the safety layer's limits while not commanding


class Reject(str, enum.Enum):
    """Why an incoming message or target was refused. Counted per reason by the server."""

    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    MULTIPART = "multipart"
    WRONG_VERSION = "wrong_version"
    UNKNOWN_TYPE = "unknown_type"
    UNEXPECTED_TYPE = "unexpected_type"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    NO_SESSION = "no_session"
    NOT_OWNER = "not_owner"
    DUPLICATE = "duplicate"
    REORDERED = "reordered"
    STALE = "stale"
    FUTURE = "future"
    CLOCK_UNSYNCED = "clock_unsynced"
    POSITION_LIMIT = "position_limit"
    VELOCITY_LIMIT = "velocity_limit"
    ACCELERATION_LIMIT = "acceleration_limit"
    JERK_LIMIT = "jerk_limit"
    JUMP = "jump"
    RESUME_TOO_FAR = "resume_too_far"
    STOPPED = "stopped"
    ROBOT_ERROR = "robot_error"


Vec = tuple  # tuple[float, ...] of length N_JOINTS


@dataclass(frozen=True, slots=True)
class Hello:
    """Client -> server: open a session. Doubles as the first clock-sync request."""

    seq: int
    t_send_ns: int
    client_name: str
    rate_hz: float  # the client's nominal target rate [Hz]


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server -> client: session accepted. Carries the four-timestamp sync sample of the Hello."""

    seq: int
    t_send_ns: int  # server clock [ns]
    session_id: int
    echo_seq: int  # seq of the Hello answered
    echo_t_send_ns: int  # the Hello's t_send_ns [ns, client clock]
    t_recv_ns: int  # when the server received the Hello [ns, server clock]
    q_rad: Vec  # the pose the server holds [rad], shape (7,): the first target must be close to it
    watchdog_timeout_s: float
    max_message_age_s: float
    resume_tolerance_rad: float


@dataclass(frozen=True, slots=True)
class JointTarget:
    """Client -> server: desired joint positions (latest wins; older targets are never queued)."""

    seq: int
    t_send_ns: int  # client clock [ns]
    q_rad: Vec  # [rad], shape (7,)
    dq_rad_s: Vec | None = None  # optional velocity feed-forward [rad/s], shape (7,)
    gripper_width_m: float | None = None  # optional gripper opening [m]


@dataclass(frozen=True, slots=True)
class JointState:
    """Server -> client: measured robot state and the server's view of the session."""

    seq: int
    t_send_ns: int  # server clock [ns]
    t_robot_ns: int  # when the backend measured this state [ns, server clock]
    q_rad: Vec  # measured joint positions [rad], shape (7,)
    dq_rad_s: Vec  # measured joint velocities [rad/s], shape (7,)
    tau_nm: Vec | None  # measured joint torques [N m], shape (7,), when the backend has them
    mode: int  # a `Mode`
    error_flags: int  # an `ErrorFlag` mask
    last_target_seq: int  # seq of the newest accepted target (-1 if none)
    last_target_recv_ns: int  # when that target was received [ns, server clock] (-1 if none)
    n_accepted: int  # targets accepted this session
    n_rejected: int  # messages rejected this session


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Client -> server: liveness and clock sync. Echoes the previous `HeartbeatReply` (or Welcome)."""

    seq: int
    t_send_ns: int  # client clock [ns]
    echo_seq: int  # seq of the last reply received (-1 if none)
    echo_t_recv_ns: int  # when that reply was received [ns, client clock] (-1 if none)


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """Server -> client: answer to a `Heartbeat` with the server's receive and send times."""

    seq: int
    t_send_ns: int  # server clock [ns]
    echo_seq: int  # seq of the heartbeat answered
    echo_t_send_ns: int  # that heartbeat's t_send_ns [ns, client clock]
    t_recv_ns: int  # when the server received it [ns, server clock]


@dataclass(frozen=True, slots=True)
class Stop:
    """Client -> server: stop following and hold; a new handshake is needed to move again."""

    seq: int
    t_send_ns: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Recover:
    """Client -> server: the operator asks for the robot's own error recovery (libfranka's automatic
    error recovery). Accepted only from the session's owner while the server is in ERROR; the twin's
    client never sends it (``realsim robot-server --recover`` does)."""

    seq: int
    t_send_ns: int


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Server -> client: a handshake was refused (code is a `Reject` value)."""

    seq: int
    t_send_ns: int
    code: str
    text: str = ""


Message = Union[Hello, Welcome, JointTarget, JointState, Heartbeat, HeartbeatReply, Stop, Recover, ErrorReply]

# The codec (encode / decode) lives in ``_codec.py``; it is part of this module's interface.
from ._codec import decode, encode, peek_version  # noqa: E402
