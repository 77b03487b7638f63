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

import msgpack

from ._errors import ProtocolError

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

_TYPE_OF = {
    Hello: MsgType.HELLO,
    Welcome: MsgType.WELCOME,
    JointTarget: MsgType.TARGET,
    JointState: MsgType.STATE,
    Heartbeat: MsgType.HEARTBEAT,
    HeartbeatReply: MsgType.HEARTBEAT_REPLY,
    Stop: MsgType.STOP,
    Recover: MsgType.RECOVER,
    ErrorReply: MsgType.ERROR,
}


def _vec_out(v) -> list | None:
    if v is None:
        return None
    out = [float(x) for x in v]
    if len(out) != N_JOINTS:
        raise ValueError(f"joint vector must have {N_JOINTS} entries, got {len(out)}")
    return out


def encode(msg: Message, version: int = PROTOCOL_VERSION) -> bytes:
    """Serialise one message to bytes. ``version`` is only overridden by tests of version checks."""
    t = _TYPE_OF.get(type(msg))
    if t is None:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    head = [int(version), int(t), int(msg.seq), int(msg.t_send_ns)]
    if t is MsgType.TARGET:
        body = [_vec_out(msg.q_rad), _vec_out(msg.dq_rad_s),
                None if msg.gripper_width_m is None else float(msg.gripper_width_m)]
    elif t is MsgType.STATE:
        body = [int(msg.t_robot_ns), _vec_out(msg.q_rad), _vec_out(msg.dq_rad_s), _vec_out(msg.tau_nm),
                int(msg.mode), int(msg.error_flags), int(msg.last_target_seq), int(msg.last_target_recv_ns),
                int(msg.n_accepted), int(msg.n_rejected)]
    elif t is MsgType.HEARTBEAT:
        body = [int(msg.echo_seq), int(msg.echo_t_recv_ns)]
    elif t is MsgType.HEARTBEAT_REPLY:
        body = [int(msg.echo_seq), int(msg.echo_t_send_ns), int(msg.t_recv_ns)]
    elif t is MsgType.HELLO:
        body = [str(msg.client_name)[:_MAX_NAME_CHARS], float(msg.rate_hz)]
    elif t is MsgType.WELCOME:
        body = [int(msg.session_id), int(msg.echo_seq), int(msg.echo_t_send_ns), int(msg.t_recv_ns),
                _vec_out(msg.q_rad), float(msg.watchdog_timeout_s), float(msg.max_message_age_s),
                float(msg.resume_tolerance_rad)]
    elif t is MsgType.STOP:
        body = [str(msg.reason)[:_MAX_NAME_CHARS]]
    elif t is MsgType.RECOVER:
        body = []
    else:  # ERROR
        body = [str(msg.code)[:_MAX_NAME_CHARS], str(msg.text)[:256]]
    return msgpack.packb(head + body, use_bin_type=True)


# ---------------------------------------------------------------- decoding (never trusts the sender)

def _fail(reason: Reject, detail: str) -> ProtocolError:
    return ProtocolError(reason, detail)


def _int(x, what: str, lo: int = -1, hi: int = _MAX_U63) -> int:
    if type(x) is not int:
        raise _fail(Reject.MALFORMED, f"{what} must be an integer, got {type(x).__name__}")
    if not lo <= x <= hi:
        raise _fail(Reject.MALFORMED, f"{what}={x} out of range [{lo}, {hi}]")
    return x


def _in_range(v: float, what: str) -> float:
    lo, hi = RANGES[what]
    if not lo <= v <= hi:
        raise _fail(Reject.OUT_OF_RANGE, f"{what}={v:.6g} out of [{lo:.6g}, {hi:.6g}]")
    return v


def _float(x, what: str) -> float:
    if type(x) is float:
        v = x
    elif type(x) is int:
        v = float(x)
    else:
        raise _fail(Reject.MALFORMED, f"{what} must be a number, got {type(x).__name__}")
    if not math.isfinite(v):
        raise _fail(Reject.NON_FINITE, f"{what} is not finite")
    return _in_range(v, what)


def _vec(x, what: str, optional: bool = False) -> tuple | None:
    if x is None and optional:
        return None
    if type(x) is not list or len(x) != N_JOINTS:
        n = len(x) if isinstance(x, list) else type(x).__name__
        raise _fail(Reject.MALFORMED, f"{what} must be a list of {N_JOINTS} numbers, got {n}")
    out = []
    for v in x:
        tv = type(v)
        if tv is float:
            out.append(v)
        elif tv is int:
            out.append(float(v))
        else:
            raise _fail(Reject.MALFORMED, f"{what} holds a {tv.__name__}")
    if not all(map(math.isfinite, out)):
        raise _fail(Reject.NON_FINITE, f"{what} holds NaN or inf")
    lo, hi = RANGES[what]
    if not lo <= min(out) or not max(out) <= hi:
        raise _fail(Reject.OUT_OF_RANGE, f"{what} out of [{lo:.6g}, {hi:.6g}]")
    return tuple(out)


def _str(x, what: str, max_len: int) -> str:
    if type(x) is not str or len(x) > max_len:
        raise _fail(Reject.MALFORMED, f"{what} must be a string of at most {max_len} chars")
    return x


_N_FIELDS = {
    MsgType.HELLO: 2,
    MsgType.WELCOME: 8,
    MsgType.TARGET: 3,
    MsgType.STATE: 10,
    MsgType.HEARTBEAT: 2,
    MsgType.HEARTBEAT_REPLY: 3,
    MsgType.STOP: 1,
    MsgType.RECOVER: 0,
    MsgType.ERROR: 2,
}


_UNPACK_LIMITS = dict(raw=False, use_list=True, strict_map_key=True, max_str_len=256, max_bin_len=0,
                      max_array_len=16, max_map_len=0, max_ext_len=0)


def _unpack(data: bytes, max_bytes: int) -> list:
    n = len(data)
    if 0 < n <= max_bytes:  # fast path for well-formed messages; failures are classified below
        try:
            obj = msgpack.unpackb(data, **_UNPACK_LIMITS)
        except Exception:
            pass
        else:
            if type(obj) is list and len(obj) >= 4:
                return obj
    return _unpack_checked(data, max_bytes)


def _unpack_checked(data: bytes, max_bytes: int) -> list:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("decode expects bytes")
    n = len(data)
    if n == 0:
        raise _fail(Reject.TRUNCATED, "empty message")
    if n > max_bytes:
        raise _fail(Reject.OVERSIZED, f"{n} bytes > {max_bytes}")
    unpacker = msgpack.Unpacker(max_buffer_size=max_bytes, **_UNPACK_LIMITS)
    unpacker.feed(data)
    try:
        obj = unpacker.unpack()
    except msgpack.OutOfData:
        raise _fail(Reject.TRUNCATED, f"incomplete msgpack in {n} bytes") from None
    except (ValueError, TypeError, msgpack.UnpackException, UnicodeDecodeError, RecursionError) as exc:
        raise _fail(Reject.MALFORMED, f"undecodable ({type(exc).__name__})") from None
    if unpacker.tell() != n:
        raise _fail(Reject.MALFORMED, f"{n - unpacker.tell()} trailing bytes")
    if type(obj) is not list or len(obj) < 4:
        raise _fail(Reject.MALFORMED, "not a message array")
    return obj


def peek_version(data: bytes) -> int | None:
    """The version field of a message, or None when it cannot be read (used to answer handshakes)."""
    try:
        obj = _unpack(data, MAX_MESSAGE_BYTES)
    except ProtocolError:
        return None
    return obj[0] if type(obj[0]) is int else None


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate one message.

    Raises:
        ProtocolError: with ``reason`` one of OVERSIZED, TRUNCATED, MALFORMED, WRONG_VERSION,
            UNKNOWN_TYPE, NON_FINITE, OUT_OF_RANGE (see `RANGES`). Limits and timing are not checked here (see `robot_bridge.safety`).
    """
    obj = _unpack(data, max_bytes)
    version = obj[0]
    if type(version) is not int:
        raise _fail(Reject.MALFORMED, "version must be an integer")
    if version != PROTOCOL_VERSION:
        raise _fail(Reject.WRONG_VERSION, f"version {version}, expected {PROTOCOL_VERSION}")
    raw_type = obj[1]
    if type(raw_type) is not int:
        raise _fail(Reject.MALFORMED, "type must be an integer")
    try:
        t = MsgType(raw_type)
    except ValueError:
        raise _fail(Reject.UNKNOWN_TYPE, f"type {raw_type}") from None
    seq = _int(obj[2], "seq", 0)
    t_send = _int(obj[3], "t_send_ns", 0)
    f = obj[4:]
    if len(f) != _N_FIELDS[t]:
        raise _fail(Reject.MALFORMED, f"{t.name} needs {_N_FIELDS[t]} fields, got {len(f)}")
    if t is MsgType.TARGET:
        grip = None if f[2] is None else _float(f[2], "gripper_width_m")
        return JointTarget(seq, t_send, _vec(f[0], "q_rad"), _vec(f[1], "dq_rad_s", optional=True), grip)
    if t is MsgType.HEARTBEAT:
        return Heartbeat(seq, t_send, _int(f[0], "echo_seq"), _int(f[1], "echo_t_recv_ns"))
    if t is MsgType.STATE:
        return JointState(
            seq, t_send, _int(f[0], "t_robot_ns", 0), _vec(f[1], "q_rad"), _vec(f[2], "dq_rad_s"),
            _vec(f[3], "tau_nm", optional=True), _int(f[4], "mode", 0, max(Mode)), _int(f[5], "error_flags", 0, 1 << 31),
            _int(f[6], "last_target_seq"), _int(f[7], "last_target_recv_ns"), _int(f[8], "n_accepted", 0),
            _int(f[9], "n_rejected", 0),
        )
    if t is MsgType.HEARTBEAT_REPLY:
        return HeartbeatReply(seq, t_send, _int(f[0], "echo_seq", 0), _int(f[1], "echo_t_send_ns", 0),
                              _int(f[2], "t_recv_ns", 0))
    if t is MsgType.HELLO:
        return Hello(seq, t_send, _str(f[0], "client_name", _MAX_NAME_CHARS), _float(f[1], "rate_hz"))
    if t is MsgType.WELCOME:
        return Welcome(seq, t_send, _int(f[0], "session_id", 0), _int(f[1], "echo_seq", 0),
                       _int(f[2], "echo_t_send_ns", 0), _int(f[3], "t_recv_ns", 0), _vec(f[4], "q_rad"),
                       _float(f[5], "watchdog_timeout_s"), _float(f[6], "max_message_age_s"),
                       _float(f[7], "resume_tolerance_rad"))
    if t is MsgType.STOP:
        return Stop(seq, t_send, _str(f[0], "reason", _MAX_NAME_CHARS))
    if t is MsgType.RECOVER:
        return Recover(seq, t_send)
    return ErrorReply(seq, t_send, _str(f[0], "code", _MAX_NAME_CHARS), _str(f[1], "text", 256))
