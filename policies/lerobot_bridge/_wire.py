"""The bridge's wire format: length-prefixed frames of a JSON header and raw numpy arrays (never pickle).

Standard library and numpy only: the LeRobot-side server imports this file too.

A frame on the socket::

    u32 big-endian   payload length L (L <= max_frame_bytes)
    u32 big-endian   header length H (H <= MAX_HEADER_BYTES)
    H bytes          UTF-8 JSON object: {"op": str, ..., "arrays": [{"name", "dtype", "shape"}, ...]}
    L - 4 - H bytes  the arrays' bytes, C order, little-endian, in the header's order

Only ``float32``, ``float64`` and ``uint8`` arrays are allowed, up to ``MAX_NDIM`` dimensions; float arrays
must be finite. The array bytes must add up to the payload exactly. Anything else is a `WireError`.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from typing import Any

import numpy as np

__all__ = ["WireError", "ConnectionClosed", "PROTOCOL_VERSION", "MAX_FRAME_BYTES", "MAX_HEADER_BYTES", "DTYPES", "encode", "decode",
           "send_message", "recv_message"]

PROTOCOL_VERSION = 1
#: Default largest payload [bytes]: 1024 worlds of a 96 x 96 RGB image with their state fit in it.
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 32
MAX_NDIM = 5
#: Allowed dtype names -> the dtype on the wire (explicitly little-endian).
DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "uint8": np.dtype("|u1")}
_LEN = struct.Struct(">I")


class WireError(ValueError):
    """A frame or message that breaks the wire format (or a socket that closed mid-frame)."""


class ConnectionClosed(WireError):
    """The peer closed the connection (between frames: an orderly end; mid-frame: a broken one)."""


def _check_array(name: str, array: np.ndarray) -> np.ndarray:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise WireError(f"array name must be a non-empty string of at most 200 characters, got {name!r}")
    array = np.asarray(array)
    if array.dtype.name not in DTYPES:
        raise WireError(f"array {name!r}: dtype {array.dtype} not allowed (only {', '.join(DTYPES)})")
    if array.ndim > MAX_NDIM:
        raise WireError(f"array {name!r}: {array.ndim} dimensions (at most {MAX_NDIM})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise WireError(f"array {name!r} holds non-finite values")
    return np.ascontiguousarray(array, dtype=DTYPES[array.dtype.name])


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
           max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """One frame (length prefix included) of ``header`` (a JSON-able dict with a string "op"; the key
    "arrays" is reserved) and ``arrays`` (name -> array; float arrays must be finite)."""
    if not isinstance(header, dict) or not isinstance(header.get("op"), str) or "arrays" in header:
        raise WireError("a message header is a dict with a string 'op' and no 'arrays' key")
    arrays = arrays or {}
    if len(arrays) > MAX_ARRAYS:
        raise WireError(f"{len(arrays)} arrays in one message (at most {MAX_ARRAYS})")
    checked = {k: _check_array(k, v) for k, v in arrays.items()}
    meta = [{"name": k, "dtype": v.dtype.name, "shape": list(v.shape)} for k, v in checked.items()]
    try:
        head = json.dumps({**header, "arrays": meta}, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise WireError(f"header is not plain JSON: {exc}") from None
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes (at most {MAX_HEADER_BYTES})")
    body = b"".join(v.tobytes() for v in checked.values())
    length = _LEN.size + len(head) + len(body)
    if length > max_frame_bytes:
        raise WireError(f"frame of {length} bytes exceeds the limit of {max_frame_bytes}")
    return _LEN.pack(length) + _LEN.pack(len(head)) + head + body


def decode(payload: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A frame's payload (without its length prefix) -> (header without "arrays", name -> array copy).
    Raises `WireError` for anything that is not a well-formed message."""
    if len(payload) > max_frame_bytes:
        raise WireError(f"frame of {len(payload)} bytes exceeds the limit of {max_frame_bytes}")
    if len(payload) < _LEN.size:
        raise WireError("frame too short for its header length")
    (hlen,) = _LEN.unpack_from(payload)
    if hlen > MAX_HEADER_BYTES or _LEN.size + hlen > len(payload):
        raise WireError(f"header length {hlen} does not fit the frame ({len(payload)} bytes)")
    try:
        header = json.loads(payload[_LEN.size:_LEN.size + hlen].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise WireError("header must be a JSON object with a string 'op'")
    meta = header.pop("arrays", [])
    if not isinstance(meta, list) or len(meta) > MAX_ARRAYS:
        raise WireError(f"'arrays' must be a list of at most {MAX_ARRAYS} entries")
    arrays: dict[str, np.ndarray] = {}
    offset = _LEN.size + hlen
    for m in meta:
        name, dtype, shape = _array_meta(m)
        if name in arrays:
            raise WireError(f"array {name!r} appears twice")
        size = math.prod(shape) * dtype.itemsize
        if offset + size > len(payload):
            raise WireError(f"array {name!r} {tuple(shape)} {dtype.name} runs past the frame's end")
        array = np.frombuffer(payload, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise WireError(f"array {name!r} holds non-finite values")
        arrays[name] = array
        offset += size
    if offset != len(payload):
        raise WireError(f"{len(payload) - offset} bytes left over after the arrays")
    return header, arrays


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in a header")


def _array_meta(m: Any) -> tuple[str, np.dtype, list[int]]:
    if not isinstance(m, dict) or set(m) != {"name", "dtype", "shape"}:
        raise WireError(f"array entry must be {{name, dtype, shape}}, got {m!r}"[:300])
    name, dtype, shape = m["name"], m["dtype"], m["shape"]
    if not isinstance(name, str) or not name or len(name) > 200:
        raise WireError(f"array name must be a non-empty string of at most 200 characters, got {name!r}"[:300])
    if dtype not in DTYPES:
        raise WireError(f"array {name!r}: dtype {dtype!r} not allowed (only {', '.join(DTYPES)})"[:300])
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_FRAME_BYTES for d in shape)):
        raise WireError(f"array {name!r}: shape must be a list of at most {MAX_NDIM} sizes >= 0, got {shape!r}"[:300])
    return name, DTYPES[dtype], shape


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionClosed("the connection closed" + (" mid-frame" if got else ""))
        got += k
    return bytes(buf)


def send_message(sock: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    """Encode and send one message (the socket's timeout applies)."""
    sock.sendall(encode(header, arrays, max_frame_bytes))


def recv_message(sock: socket.socket, max_frame_bytes: int = MAX_FRAME_BYTES,
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Receive and decode one message; a length over ``max_frame_bytes`` is refused before it is read
    (raises `WireError`; the socket's timeout raises ``TimeoutError``)."""
    (length,) = _LEN.unpack(_recv_exactly(sock, _LEN.size))
    if length > max_frame_bytes:
        raise WireError(f"frame of {length} bytes announced, the limit is {max_frame_bytes}")
    return decode(_recv_exactly(sock, length), max_frame_bytes)
