"""Encoding and strict decoding of the robot bridge's messages (see `robot_bridge.protocol` for the
layout): msgpack arrays ``[version, type, seq, t_send_ns, field, ...]``. Decoding never trusts the
sender: sizes, types, array lengths, finiteness and every numeric field's range are checked, and each
failure raises `ProtocolError` with a `Reject` reason."""

from __future__ import annotations

import math

import msgpack

from ._errors import ProtocolError
from .protocol import (
    _MAX_NAME_CHARS,
    _MAX_U63,
    MAX_MESSAGE_BYTES,
    N_JOINTS,
    PROTOCOL_VERSION,
    RANGES,
    ErrorReply,
    Heartbeat,
    HeartbeatReply,
    Hello,
    JointState,
    JointTarget,
    Message,
    Mode,
    MsgType,
    Recover,
    Reject,
    Stop,
    Welcome,
)

__all__ = ["encode", "decode", "peek_version"]


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
