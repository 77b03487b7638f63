"""The camera stream over ZMQ: one multipart message per frame set, raw image buffers.

Message (protocol version 1), ZMQ multipart::

    part 0    header, msgpack map:
              {"v": 1, "seq": int, "send_mono_ns": int, "send_wall_ns": int,
               "cams": [{"serial": str, "w": int, "h": int, "depth": "float32" | "uint16_mm" | "none",
                         "kid": str, "k": intrinsics dict, "T": 16 floats row-major | None,
                         "dev_ms": float, "dom": str, "fn": int, "age_ns": int}, ...]}
    part 1+2i RGB bytes of camera i, uint8 (h, w, 3) C order
    part 2+2i depth bytes of camera i: float32 metres or uint16 millimetres (h, w); empty if "none"

``age_ns`` is the frame's age when sent (sender's monotonic clock), so the receiver can place the
frame's host time on its own clock without synchronised clocks. ``kid`` identifies the intrinsics
(hash of their values); the receiver decodes each distinct one once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping

import msgpack
import numpy as np

from calibration import CameraIntrinsics, SetupCalibration

from ._calib import calibrated
from ._config import PublisherConfig, StreamConfig
from ._errors import CameraError, StreamProtocolError
from robot_bridge.endpoints import is_loopback_endpoint

from ._source import CameraSource
from ._types import CameraFrame, FrameSet

PROTOCOL_VERSION = 1
_DEPTH_ENCODINGS = ("float32", "uint16_mm", "none")


def intrinsics_id(intr: CameraIntrinsics) -> str:
    """A short stable id of an intrinsics value (hash of its fields)."""
    return hashlib.sha1(repr(sorted(intr.to_dict().items())).encode()).hexdigest()[:12]


def encode_frame_set(frames: FrameSet | Mapping[str, CameraFrame], seq: int, depth_encoding: str = "float32") -> list:
    """The multipart message parts for ``frames`` (buffers are not copied where avoidable)."""
    if depth_encoding not in _DEPTH_ENCODINGS[:2]:
        raise ValueError(f"depth_encoding must be one of {_DEPTH_ENCODINGS[:2]}, got {depth_encoding!r}")
    now = time.monotonic_ns()
    cams = []
    parts: list = [b""]
    for serial, f in frames.items():
        rgb = np.ascontiguousarray(f.rgb)
        if f.depth_m is None:
            enc = "none"
            depth = b""
        elif depth_encoding == "float32":
            enc = "float32"
            depth = np.ascontiguousarray(f.depth_m, dtype=np.float32)
        else:
            enc = "uint16_mm"
            depth = np.clip(np.rint(f.depth_m * 1000.0), 0, 65535).astype(np.uint16)
        cams.append({
            "serial": str(serial), "w": int(rgb.shape[1]), "h": int(rgb.shape[0]), "depth": enc,
            "kid": intrinsics_id(f.intrinsics), "k": f.intrinsics.to_dict(),
            "T": None if f.T_world_camera is None else [float(x) for x in np.ravel(f.T_world_camera)],
            "dev_ms": float(f.device_time_ms), "dom": f.time_domain, "fn": int(f.frame_number),
            "age_ns": int(now - f.host_time_ns),
        })
        parts += [rgb, depth]
    header = {"v": PROTOCOL_VERSION, "seq": int(seq), "send_mono_ns": now, "send_wall_ns": time.time_ns(), "cams": cams}
    parts[0] = msgpack.packb(header, use_bin_type=True)
    return parts


class _Decoder:
    def __init__(self) -> None:
        self._intr: dict[str, CameraIntrinsics] = {}

    def decode(self, parts: list, recv_ns: int) -> tuple[dict, list[CameraFrame]]:
        if len(parts) < 1:
            raise StreamProtocolError("empty message")
        try:
            header = msgpack.unpackb(bytes(parts[0].buffer if hasattr(parts[0], "buffer") else parts[0]), raw=False)
        except Exception as exc:  # msgpack raises several types
            raise StreamProtocolError(f"header is not msgpack: {exc}") from exc
        if not isinstance(header, dict) or header.get("v") != PROTOCOL_VERSION:
            raise StreamProtocolError(
                f"protocol version {header.get('v') if isinstance(header, dict) else None!r}, expected {PROTOCOL_VERSION}"
            )
        cams = header.get("cams")
        if not isinstance(cams, list) or len(parts) != 1 + 2 * len(cams):
            raise StreamProtocolError(f"message has {len(parts)} parts for {len(cams) if isinstance(cams, list) else '?'} cameras")
        frames = []
        for i, c in enumerate(cams):
            try:
                serial, w, h, enc = str(c["serial"]), int(c["w"]), int(c["h"]), c["depth"]
                kid = str(c["kid"])
                intr = self._intr.get(kid)
                if intr is None:
                    intr = CameraIntrinsics.from_dict(c["k"])
                    if len(self._intr) > 64:
                        self._intr.clear()
                    self._intr[kid] = intr
                T = None if c.get("T") is None else np.asarray(c["T"], dtype=np.float64).reshape(4, 4)
                rgb_buf = parts[1 + 2 * i]
                rgb_buf = rgb_buf.buffer if hasattr(rgb_buf, "buffer") else rgb_buf
                if len(rgb_buf) != w * h * 3:
                    raise StreamProtocolError(f"camera {serial}: RGB part has {len(rgb_buf)} bytes, expected {w * h * 3}")
                rgb = np.frombuffer(rgb_buf, dtype=np.uint8).reshape(h, w, 3)
                d_buf = parts[2 + 2 * i]
                d_buf = d_buf.buffer if hasattr(d_buf, "buffer") else d_buf
                if enc == "none":
                    depth = None
                elif enc == "float32":
                    if len(d_buf) != w * h * 4:
                        raise StreamProtocolError(f"camera {serial}: depth part has {len(d_buf)} bytes, expected {w * h * 4}")
                    depth = np.frombuffer(d_buf, dtype=np.float32).reshape(h, w)
                elif enc == "uint16_mm":
                    if len(d_buf) != w * h * 2:
                        raise StreamProtocolError(f"camera {serial}: depth part has {len(d_buf)} bytes, expected {w * h * 2}")
                    depth = np.frombuffer(d_buf, dtype=np.uint16).reshape(h, w).astype(np.float32) * np.float32(0.001)
                else:
                    raise StreamProtocolError(f"camera {serial}: unknown depth encoding {enc!r}")
                frames.append(CameraFrame(
                    serial, rgb, depth, intr, T, float(c["dev_ms"]), recv_ns - int(c["age_ns"]),
                    int(c["fn"]), str(c.get("dom", "")),
                ))
            except StreamProtocolError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise StreamProtocolError(f"camera entry {i} is malformed: {exc}") from exc
        return header, frames


class FramePublisher:
    """Publishes frame sets on a ZMQ PUB socket (latest wins: beyond ``sndhwm`` messages are dropped).

    Example::

        with FramePublisher(PublisherConfig(endpoint="tcp://127.0.0.1:5560")) as pub:
            pub.publish(frame_set)          # a FrameSet, or a mapping serial -> CameraFrame
    """

    def __init__(self, config: PublisherConfig | None = None, *, context: object | None = None) -> None:
        import zmq

        self.config = config or PublisherConfig()
        if self.config.bind and not self.config.allow_non_loopback and not is_loopback_endpoint(self.config.endpoint):
            raise ValueError(
                f"refusing to bind camera stream on non-loopback endpoint {self.config.endpoint!r}; the stream is "
                "not encrypted: set allow_non_loopback=True on a trusted network"
            )
        if self.config.depth_encoding not in _DEPTH_ENCODINGS[:2]:
            raise ValueError(f"depth_encoding must be one of {_DEPTH_ENCODINGS[:2]}")
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, int(self.config.sndhwm))
        self._sock.setsockopt(zmq.LINGER, 0)
        try:
            if self.config.bind:
                self._sock.bind(self.config.endpoint)
            else:
                self._sock.connect(self.config.endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise CameraError(f"cannot {'bind' if self.config.bind else 'connect'} {self.config.endpoint}: {exc}") from exc
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT) if self.config.bind else self.config.endpoint
        self._seq = 0
        self._lock = threading.Lock()
        self.bytes_sent = 0

    def publish(self, frames: FrameSet | Mapping[str, CameraFrame]) -> int:
        """Send one frame set; returns its sequence number. Never blocks."""
        import zmq

        with self._lock:
            if self._sock is None:
                raise CameraError("publisher is closed")
            self._seq += 1
            parts = encode_frame_set(frames, self._seq, self.config.depth_encoding)
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=not self.config.zero_copy)
            except zmq.Again:
                pass  # PUB drops at the high-water mark; nothing queues
            self.bytes_sent += sum(len(memoryview(p).cast("B")) for p in parts)
            return self._seq

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close(0)
                self._sock = None

    def __enter__(self) -> FramePublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamSource(CameraSource):
    """Camera source fed by a :class:`FramePublisher` over ZMQ (subscriber side).

    Intrinsics and ``T_world_camera`` come from the setup's calibration when it has the serial, else
    from the messages. Malformed messages are dropped and counted (``stats().malformed_messages``).
    """

    def __init__(
        self,
        config: StreamConfig | None = None,
        calibration: SetupCalibration | None = None,
        *,
        max_frame_age_s: float = 0.1,
        frame_timeout_s: float = 1.0,
        context: object | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        super().__init__(self.config.serials, max_frame_age_s, frame_timeout_s)
        if calibration is not None and self.config.serials:
            calibration.require(self.config.serials)
        self.calibration = calibration
        self._ctx = context
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self.bytes_received = 0
        self.last_header: dict = {}

    def _start(self) -> None:
        import zmq

        ctx = self._ctx or zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, int(self.config.rcvhwm))
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            sock.connect(self.config.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise CameraError(f"cannot connect to camera stream {self.config.endpoint}: {exc}") from exc
        self._stop_evt.clear()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="camera-stream-sub", daemon=True)
        self._thread.start()

    def _run(self, sock: object) -> None:
        import zmq

        dec = _Decoder()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        expected = set(self.config.serials)
        try:
            while not self._stop_evt.is_set():
                if not poller.poll(50):
                    continue
                # Drain: keep only the newest message (latest-frame semantics).
                parts = None
                while True:
                    try:
                        parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    recv_ns = time.monotonic_ns()
                    self.bytes_received += sum(len(p.buffer) for p in parts)
                if parts is None:
                    continue
                try:
                    header, frames = dec.decode(parts, recv_ns)
                    if expected:
                        got = {f.serial for f in frames}
                        if not expected <= got:
                            raise StreamProtocolError(f"message lacks camera(s) {sorted(expected - got)}")
                        frames = [f for f in frames if f.serial in expected]
                except StreamProtocolError as exc:
                    self._buffer.note_malformed(f"dropped camera-stream message: {exc}")
                    continue
                if self.calibration is not None:
                    frames = [self._apply_calibration(f) for f in frames]
                self.last_header = header
                self._buffer.put(frames, replace_set=not expected)
        except Exception as exc:  # hand it to the reader
            self._buffer.fail(CameraError(f"camera stream receiver failed: {exc!r}"))
        finally:
            sock.close(0)

    def _apply_calibration(self, f: CameraFrame) -> CameraFrame:
        intr, T = calibrated(self.calibration, f.serial, f.intrinsics)
        if T is None and self.config.use_stream_poses:
            T = f.T_world_camera
        return CameraFrame(f.serial, f.rgb, f.depth_m, intr, T, f.device_time_ms, f.host_time_ns, f.frame_number, f.time_domain)

    def _stop(self) -> None:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


__all__ = ["FramePublisher", "PROTOCOL_VERSION", "StreamSource", "encode_frame_set", "is_loopback_endpoint"]
