"""Browser teleoperation: a page served on loopback shows a top view of the table (workspace, goal,
block, pusher and the target marker); dragging on it sets the pusher target.

The page polls ``POST /state`` about ten times a second; that poll is its heartbeat. When the page
closes (``/bye`` beacon) or falls silent for ``heartbeat_timeout_s``, the teleoperator holds the pusher
where it is and asks the collection to stop: a closed page stops the robot. HTTP is served by the
standard library from its own thread, bound to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import EpisodeEvent, TargetLimits, Teleoperator, TeleopError

if TYPE_CHECKING:
    from twin.env import Observation

__all__ = ["BrowserConfig", "BrowserTeleop"]

_PAGE = Path(__file__).with_name("_browser_page.html")


@dataclass(frozen=True)
class BrowserConfig:
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (see ``BrowserTeleop.url``).
    port: int = 8765
    #: No poll from the page for this long = the page is gone [s].
    heartbeat_timeout_s: float = 1.0
    #: Wait this long for a page to open before the first episode [s] (0: do not wait).
    wait_for_page_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.heartbeat_timeout_s > 0:
            raise ValueError("heartbeat_timeout_s must be > 0")


class BrowserTeleop(Teleoperator):
    """Serves the teleop page; ``get_action`` returns the dragged target (or holds the pusher)."""

    name = "browser"

    def __init__(self, config: BrowserConfig = BrowserConfig(), limits: TargetLimits = TargetLimits(),
                 goal_outline: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        self.limits = limits
        self.goal_outline = None if goal_outline is None else np.asarray(goal_outline, dtype=float).tolist()
        self._lock = threading.Lock()
        self._target: np.ndarray | None = None
        self._last_seen: float | None = None
        self._gone = False
        self._view: dict[str, Any] = {"episode": 0, "step": 0, "coverage": 0.0}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise TeleopError("the browser teleoperator is not connected")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def connect(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
                pass

            def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path in ("/", "/index.html"):
                    self._reply(200, _PAGE.read_bytes(), "text/html; charset=utf-8")
                else:
                    self._reply(404, b"{}")

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                if n > 4096:
                    self._reply(413, b"{}")
                    return
                try:
                    body = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    self._reply(400, b'{"error": "not JSON"}')
                    return
                code, reply = owner._on_request(self.path, body)
                self._reply(code, json.dumps(reply).encode())

        try:
            self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        except OSError as exc:
            raise TeleopError(f"cannot serve the teleop page on {self.config.host}:{self.config.port}: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="browser-teleop", daemon=True)
        self._thread.start()
        super().connect()
        if self.config.wait_for_page_s > 0:
            deadline = time.monotonic() + self.config.wait_for_page_s
            while not self.page_connected and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.page_connected:
                self.disconnect()
                raise TeleopError(f"no browser opened {self.url} within {self.config.wait_for_page_s:.0f} s")

    def disconnect(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        super().disconnect()

    @property
    def page_connected(self) -> bool:
        """A page polled within the heartbeat timeout and has not said goodbye."""
        with self._lock:
            return (self._last_seen is not None and not self._gone
                    and time.monotonic() - self._last_seen < self.config.heartbeat_timeout_s)

    def _on_request(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            if path == "/bye":
                self._gone = True
                return 200, {}
            self._last_seen, self._gone = now, False
            if path == "/state":
                return 200, dict(self._view, workspace={"x": list(self.limits.x_range_m), "y": list(self.limits.y_range_m)},
                                 goal=self.goal_outline,
                                 target=None if self._target is None else self._target.tolist())
            if path == "/target":
                try:
                    xy = np.array([float(body["x"]), float(body["y"])])
                except (KeyError, TypeError, ValueError):
                    return 400, {"error": "need numbers x and y [m]"}
                if not np.all(np.isfinite(xy)):
                    return 400, {"error": "non-finite target"}
                self._target = self.limits.clip(xy)
                self.note_input()
                return 200, {"target": self._target.tolist()}
            if path == "/event":
                try:
                    self.push_event(EpisodeEvent(body.get("event")))
                except ValueError:
                    return 400, {"error": f"unknown event {body.get('event')!r}"}
                return 200, {}
        return 404, {}

    def reset(self) -> None:
        with self._lock:
            self._target = None

    def update_view(self, obs: "Observation", episode: int, step: int, coverage: float) -> None:
        """What the page draws: the block outline, the pusher and the episode status."""
        with self._lock:
            self._view = {"episode": int(episode), "step": int(step), "coverage": float(coverage),
                          "block": np.asarray(obs.keypoints[0], dtype=float).tolist(),
                          "pusher": np.asarray(obs.pusher_xy[0], dtype=float).tolist()}

    def get_action(self, obs: "Observation") -> np.ndarray:
        pusher = np.asarray(obs.pusher_xy[0], dtype=np.float64)
        self.update_view(obs, self._view.get("episode", 0), self._view.get("step", 0) + 1, self._view.get("coverage", 0.0))
        with self._lock:
            seen = self._last_seen
            gone = self._gone or (seen is not None and time.monotonic() - seen >= self.config.heartbeat_timeout_s)
            if gone:
                if self._target is not None or seen is not None:
                    self._events.append(EpisodeEvent.STOP)
                self._target = None
                self._last_seen = None
                self._gone = False
                return pusher.copy()  # hold: the robot stops where it is
            return pusher.copy() if self._target is None else self._target.copy()
