"""The twin side's joint streamer: a thread that streams joint targets to the robot server, interpolating
the twin's joints over each control period, and watches the link (latest state, tracking error, the
follower's lag). The live loop owns one; `BridgeClient` does the protocol underneath."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from ._errors import BridgeError, LinkLostError
from .client import BridgeClient, ClientConfig
from .protocol import Mode

__all__ = ["JointStreamer"]


class JointStreamer:
    """Streams joint targets to the robot server from its own thread, interpolating the twin's joints
    linearly over each control period, and watches the link. Thread-safe.

    Every message moves at most ``max_step_rad`` per joint from the previous one (from the held pose
    when the server holds), so a late thread or a twin running ahead never produces a jump the robot's
    safety layer must reject: the robot then lags and catches up instead.
    """

    def __init__(self, address: str, rate_hz: float, robot_timeout_s: float, max_step_rad: float = 0.04) -> None:
        self.client = BridgeClient(ClientConfig(server_address=address, rate_hz=rate_hz))
        self.rate_hz = rate_hz
        self.robot_timeout_s = robot_timeout_s
        self.max_step_rad = max_step_rad
        self._last_sent: np.ndarray | None = None
        self._lock = threading.Lock()
        self._segment: tuple[np.ndarray, np.ndarray, float, float] | None = None  # (q0, q1, t0, duration)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state_seq = -1
        self._last_state_t = time.monotonic()
        self._error: BaseException | None = None
        self._sq_err: list[float] = []  # squared tracking errors (rad^2), one per joint sample
        # bounded histories of (time [s], joints [7]) for the lag estimate: ~2 min at 60 Hz
        self._cmd_hist: collections.deque = collections.deque(maxlen=8192)
        self._meas_hist: collections.deque = collections.deque(maxlen=8192)

    def start(self, connect_timeout_s: float = 5.0) -> np.ndarray:
        """Connect (raises ``LinkLostError`` naming the address) and return the robot's joints [7]."""
        try:
            welcome = self.client.connect(timeout_s=connect_timeout_s)
        except (BridgeError, TimeoutError) as exc:
            self.client.close()
            raise LinkLostError(f"no robot server answers at {self.client.config.server_address}: {exc}") from exc
        q = np.asarray(welcome.q_rad, dtype=np.float64)
        now = time.monotonic()
        with self._lock:
            self._segment = (q, q, now, 1e-6)
            self._last_state_t = now
        self._thread = threading.Thread(target=self._run, name="joint-streamer", daemon=True)
        self._thread.start()
        return q

    def set_path(self, q_from: np.ndarray, q_to: np.ndarray, duration_s: float) -> None:
        """Move the target linearly from ``q_from`` to ``q_to`` over ``duration_s``, then hold."""
        with self._lock:
            self._segment = (np.array(q_from, dtype=np.float64), np.array(q_to, dtype=np.float64), time.monotonic(),
                             max(duration_s, 1e-6))

    def target(self, now: float | None = None) -> np.ndarray:
        with self._lock:
            q0, q1, t0, d = self._segment
        s = min(1.0, max(0.0, ((time.monotonic() if now is None else now) - t0) / d))
        return q0 + s * (q1 - q0)

    def robot_q(self) -> np.ndarray | None:
        st = self.client.state
        return None if st is None else np.asarray(st.q_rad, dtype=np.float64)

    def move_to(self, q_goal: np.ndarray, speed_rad_s: float, tolerance_rad: float, timeout_s: float = 30.0) -> None:
        """Drive the robot to ``q_goal`` under a joint speed limit and wait until it is there."""
        q_now = self.target()
        duration = float(np.max(np.abs(q_goal - q_now))) / speed_rad_s
        self.set_path(q_now, q_goal, duration)
        deadline = time.monotonic() + duration + timeout_s
        while True:
            self.check()
            q = self.robot_q()
            if q is not None and time.monotonic() > self._segment[2] + duration and np.max(np.abs(q - q_goal)) < tolerance_rad:
                return
            if time.monotonic() > deadline:
                raise LinkLostError(f"the robot did not reach the start pose within {duration + timeout_s:.1f} s")
            time.sleep(0.02)

    def check(self) -> None:
        """Raise ``LinkLostError`` if the streamer failed or the robot stopped answering."""
        if self._error is not None:
            raise LinkLostError(f"robot link failed: {self._error}") from self._error
        silent = time.monotonic() - self._last_state_t
        if silent > self.robot_timeout_s:
            raise LinkLostError(f"the robot server at {self.client.config.server_address} stopped answering "
                                f"(no joint state for {silent:.1f} s)")

    def stop_robot(self, reason: str) -> None:
        """Tell the robot to stop and hold; it needs ``reconnect()`` to move again."""
        self.client.stop(reason)

    def reconnect(self, timeout_s: float = 5.0) -> None:
        q = np.asarray(self.client.connect(timeout_s=timeout_s).q_rad, dtype=np.float64)
        now = time.monotonic()
        with self._lock:
            self._segment = (q, q, now, 1e-6)
            self._last_sent = None

    def tracking_rms_rad(self) -> float:
        """RMS over joints and time of (commanded target - measured joints), while following [rad]."""
        with self._lock:
            return float(np.sqrt(np.mean(self._sq_err))) if self._sq_err else float("nan")

    def tracking_samples(self) -> int:
        """Joint samples (one per joint and robot state) behind ``tracking_rms_rad``."""
        with self._lock:
            return len(self._sq_err)

    def reset_tracking(self) -> None:
        with self._lock:
            self._sq_err.clear()
            self._cmd_hist.clear()
            self._meas_hist.clear()

    def follower_lag(self, max_lag_s: float = 0.3) -> tuple[float, float]:
        """The delay [s] by which the robot's joints best match the streamed targets, and the RMS
        tracking error at that delay [rad] (over joints and the recent history). (nan, nan) when
        there is too little data."""
        with self._lock:
            cmd, meas = list(self._cmd_hist), list(self._meas_hist)
        if len(cmd) < 30 or len(meas) < 30:
            return float("nan"), float("nan")
        tc = np.array([c[0] for c in cmd])
        qc = np.array([c[1] for c in cmd])
        tm = np.array([m[0] for m in meas])
        qm = np.array([m[1] for m in meas])
        best = (float("nan"), float("inf"))
        for d in np.arange(0.0, max_lag_s, 0.005):
            t = tm - d
            ok = (t >= tc[0]) & (t <= tc[-1])
            if ok.sum() < 20:
                continue
            ref = np.stack([np.interp(t[ok], tc, qc[:, j]) for j in range(qc.shape[1])], axis=1)
            rms = float(np.sqrt(np.mean((qm[ok] - ref) ** 2)))
            if rms < best[1]:
                best = (float(d), rms)
        return best

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.client.close()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                q_cmd = self.target(now)
                st = self.client.state
                base = self._last_sent
                if st is not None and st.mode != Mode.FOLLOWING:
                    base = np.asarray(st.q_rad, dtype=np.float64)  # resume from the held pose
                if base is not None:
                    q_cmd = base + np.clip(q_cmd - base, -self.max_step_rad, self.max_step_rad)
                self.client.send_target(q_cmd)
                self._last_sent = q_cmd
                with self._lock:
                    self._cmd_hist.append((now, q_cmd.copy()))
                st = self.client.poll(0.0)
                if st is not None and st.seq != self._last_state_seq:
                    self._last_state_seq = st.seq
                    self._last_state_t = now
                    if self.client.following:
                        q_err = np.asarray(st.q_rad) - q_cmd
                        with self._lock:
                            if len(self._sq_err) < 2_000_000:  # bounded
                                self._sq_err.extend((q_err**2).tolist())
                            self._meas_hist.append((now, np.asarray(st.q_rad, dtype=np.float64)))
                next_t += period
                delay = next_t - time.monotonic()
                if delay < -0.5:
                    next_t = time.monotonic()
                self._stop.wait(max(0.0, delay))
        except BaseException as exc:  # handed to the owner through check()
            self._error = exc
