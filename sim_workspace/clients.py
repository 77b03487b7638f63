"""Clients of the simulated workspace's own channels: control (what an operator does on hardware: a new
episode, a nudge of the block, a camera stall) and the hidden truth. Only launch/, tests and
benchmarks use them; the product's live loop gets them injected and never imports this package."""

from __future__ import annotations

import msgpack

from .world import WORLD_PROTOCOL_VERSION

__all__ = ["WorldControl", "TruthSubscriber", "clients_for"]


class WorldControl:
    """Client of the world's control channel (what an operator does on hardware)."""

    def __init__(self, endpoint: str, timeout_s: float = 2.0) -> None:
        import zmq

        self.endpoint, self.timeout_s = endpoint, timeout_s
        self._ctx = zmq.Context.instance()
        self._sock = None

    def _request(self, req: dict) -> dict:
        import zmq

        if self._sock is None:
            self._sock = self._ctx.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVTIMEO, int(self.timeout_s * 1000))
            self._sock.connect(self.endpoint)
        self._sock.send(msgpack.packb({"v": WORLD_PROTOCOL_VERSION, **req}))
        try:
            reply = msgpack.unpackb(self._sock.recv(), raw=False)
        except zmq.Again as exc:
            self._sock.close(0)
            self._sock = None  # a REQ socket is unusable after a lost reply
            raise TimeoutError(f"the simulated workspace at {self.endpoint} did not answer within {self.timeout_s} s") from exc
        if not reply.get("ok"):
            raise RuntimeError(f"the simulated workspace refused {req.get('cmd')!r}: {reply.get('error')}")
        return reply

    def reset(self, seed: int) -> int:
        """Place the truth block at the seeded start pose; returns the world's episode number."""
        return int(self._request({"cmd": "reset", "seed": int(seed)})["episode"])

    def ping(self) -> int:
        return int(self._request({"cmd": "ping"})["episode"])

    def nudge(self, distance_m: float, direction_rad: float | None = None) -> None:
        """Have 'a person' push the block ``distance_m`` [m] now, towards ``direction_rad`` (world frame,
        from +x towards +y) or in a random direction (tests, benchmarks)."""
        req = {"cmd": "nudge", "distance_m": float(distance_m)}
        if direction_rad is not None:
            req["direction_rad"] = float(direction_rad)
        self._request(req)

    def pause_cameras(self, seconds: float) -> None:
        """Stop publishing frames for ``seconds`` (a camera stall, for tests)."""
        self._request({"cmd": "pause_cameras", "seconds": float(seconds)})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None


class TruthSubscriber:
    """Reader of the world's hidden truth channel. For tests, benchmarks and the metrics writer only:
    the twin never reads it. Keeps the newest message (and a bounded history)."""

    def __init__(self, endpoint: str, history: int = 10000) -> None:
        import collections

        import zmq

        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.setsockopt(zmq.RCVHWM, 64)
        self._sock.connect(endpoint)
        self.history: collections.deque = collections.deque(maxlen=history)
        self.latest: dict | None = None

    def poll(self) -> dict | None:
        """Drain the socket; the newest truth message (or the previous one when none arrived)."""
        import zmq

        while True:
            try:
                msg = msgpack.unpackb(self._sock.recv(zmq.NOBLOCK), raw=False)
            except zmq.Again:
                return self.latest
            if isinstance(msg, dict) and msg.get("v") == WORLD_PROTOCOL_VERSION:
                self.latest = msg
                self.history.append(msg)

    def close(self) -> None:
        self._sock.close(0)


def clients_for(control_endpoint: str, truth_endpoint: str) -> tuple[WorldControl | None, TruthSubscriber | None]:
    """The control and truth clients of a simulated workspace, each None where its endpoint is "" (real
    hardware: the operator resets the scene and there is no truth)."""
    return (WorldControl(control_endpoint) if control_endpoint else None,
            TruthSubscriber(truth_endpoint) if truth_endpoint else None)
