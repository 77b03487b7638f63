"""Robot bridge latency: targets streamed at 1 kHz for 10 s over loopback TCP, one-way latency from
client send to backend receive, against a bare pyzmq PUSH/PULL of the same payload in the same run.

Usage::

    .venv/bin/python benchmarks/bridge_latency.py                 # 10 s each, 1 kHz
    .venv/bin/python benchmarks/bridge_latency.py --seconds 3     # quicker

The server (with the sim backend behind the full safety layer) and the baseline receiver each run in
their own process; both sides use ``time.monotonic_ns()``, which is one clock across processes.
``loss`` is strict: the fraction of targets whose sequence number never reached the backend, whether
lost in transport or superseded by a newer target that arrived before the next tick (latest wins).
The last line printed is a JSON object:
``{"p50_us", "p99_us", "max_us", "loss", "baseline_p50_us", "baseline_p99_us", "ratio_p99"}``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_bridge import protocol as P  # noqa: E402
from robot_bridge.backends.base import Backend, BackendCommand  # noqa: E402
from robot_bridge.backends.sim import PANDA_HOME_Q_RAD, SimBackend  # noqa: E402


class _FirstSeenBackend(Backend):
    """Sim backend that notes when each target sequence number first reaches the backend."""

    name = "sim-timed"

    def __init__(self, capacity: int) -> None:
        self.inner = SimBackend()
        self.rate_hz = self.inner.rate_hz
        self.seq = np.full(capacity, -1, dtype=np.int64)
        self.t_rx = np.zeros(capacity, dtype=np.int64)
        self.n = 0
        self._last_seq = -1

    def connect(self, timeout_s: float) -> None:
        self.inner.connect(timeout_s)

    def disconnect(self) -> None:
        self.inner.disconnect()

    def read_state(self):
        return self.inner.read_state()

    def command(self, cmd: BackendCommand) -> None:
        t = time.monotonic_ns()
        if cmd.target_seq != self._last_seq and cmd.target_seq >= 0 and self.n < len(self.seq):
            self.seq[self.n] = cmd.target_seq
            self.t_rx[self.n] = t
            self.n += 1
            self._last_seq = cmd.target_seq
        self.inner.command(cmd)

    def idle(self, t_ns: int) -> None:
        self.inner.idle(t_ns)


def _server_proc(q_out, stop_evt, capacity: int) -> None:
    from robot_bridge.server import RobotServer, ServerConfig

    backend = _FirstSeenBackend(capacity)
    server = RobotServer(backend, ServerConfig(bind_address="tcp://127.0.0.1:0")).start()
    q_out.put(server.endpoint)
    stop_evt.wait(600)
    st = server.stats()
    server.stop()
    q_out.put((backend.seq[: backend.n].tobytes(), backend.t_rx[: backend.n].tobytes(),
               {"accepted": st.n_accepted, "superseded": st.n_superseded, "rejected": st.n_rejected,
                "ticks": st.n_ticks, "commands": st.n_commands}))


def _baseline_proc(q_out, stop_evt, capacity: int) -> None:
    import msgpack
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 100)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    q_out.put(f"tcp://127.0.0.1:{port}")
    seq = np.full(capacity, -1, dtype=np.int64)
    t_rx = np.zeros(capacity, dtype=np.int64)
    n = 0
    while not stop_evt.is_set():
        try:
            data = sock.recv()
        except zmq.Again:
            continue
        t = time.monotonic_ns()
        if n < capacity:
            seq[n] = msgpack.unpackb(data)[2]
            t_rx[n] = t
            n += 1
    sock.close(0)
    ctx.term()
    q_out.put((seq[:n].tobytes(), t_rx[:n].tobytes(), {}))


def _paced(rate_hz: float, seconds: float, send) -> tuple[np.ndarray, np.ndarray]:
    """Call ``send(k, t_s)`` at ``rate_hz``; returns (seq, t_send_ns) arrays of what was sent."""
    n = int(rate_hz * seconds)
    seqs = np.full(n, -1, dtype=np.int64)
    t_send = np.zeros(n, dtype=np.int64)
    period_ns = int(1e9 / rate_hz)
    t0 = time.monotonic_ns() + 10 * period_ns
    for k in range(n):
        due = t0 + k * period_ns
        wait = due - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait * 1e-9)
        seqs[k], t_send[k] = send(k, (due - t0) * 1e-9)
    return seqs, t_send


def _latencies(sent_seq, t_send, rx_seq, t_rx) -> tuple[np.ndarray, float]:
    rx = dict(zip(rx_seq.tolist(), t_rx.tolist()))
    ok = sent_seq >= 0
    lat = [rx[s] - t for s, t in zip(sent_seq[ok].tolist(), t_send[ok].tolist()) if s in rx]
    loss = 1.0 - len(lat) / len(sent_seq)
    return np.asarray(lat, dtype=float) * 1e-3, loss


def _target(t_s: float) -> np.ndarray:
    q = np.array(PANDA_HOME_Q_RAD)
    q[0] += 0.1 * np.sin(2 * np.pi * 0.5 * t_s)
    q[4] += 0.1 * np.sin(2 * np.pi * 0.5 * t_s)
    return q


def run_baseline(rate_hz: float, seconds: float):
    import zmq

    ctx = mp.get_context("spawn")
    q_out, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_baseline_proc, args=(q_out, stop, int(rate_hz * seconds) + 10), daemon=True)
    proc.start()
    endpoint = q_out.get(timeout=30)
    zctx = zmq.Context()
    sock = zctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    time.sleep(0.3)

    def send(k, t_s):
        t = time.monotonic_ns()
        sock.send(P.encode(P.JointTarget(k + 1, t, tuple(_target(t_s).tolist()))))
        return k + 1, t

    seqs, t_send = _paced(rate_hz, seconds, send)
    time.sleep(0.3)
    stop.set()
    rx_seq, t_rx, _ = q_out.get(timeout=30)
    proc.join(10)
    sock.close(0)
    zctx.term()
    return _latencies(seqs, t_send, np.frombuffer(rx_seq, np.int64), np.frombuffer(t_rx, np.int64))


def run_bridge(rate_hz: float, seconds: float):
    from robot_bridge.client import BridgeClient, ClientConfig

    ctx = mp.get_context("spawn")
    q_out, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_server_proc, args=(q_out, stop, int(rate_hz * seconds) + 10), daemon=True)
    proc.start()
    endpoint = q_out.get(timeout=30)
    client = BridgeClient(ClientConfig(server_address=endpoint, rate_hz=rate_hz, send_hwm=1000))
    welcome = client.connect(5.0)
    assert np.allclose(welcome.q_rad, PANDA_HOME_Q_RAD, atol=1e-3)

    def send(k, t_s):
        seq = client.send_target(_target(t_s))
        return (seq, client.last_sent[1]) if seq >= 0 else (-1, 0)

    seqs, t_send = _paced(rate_hz, seconds, send)
    cstats = client.stats()
    time.sleep(0.3)
    stop.set()
    rx_seq, t_rx, sstats = q_out.get(timeout=30)
    proc.join(10)
    client.close()
    lat, loss = _latencies(seqs, t_send, np.frombuffer(rx_seq, np.int64), np.frombuffer(t_rx, np.int64))
    sstats["sent_within_200us_of_previous"] = int(np.sum(np.diff(t_send[seqs >= 0]) < 200_000))
    return lat, loss, sstats, cstats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate-hz", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    print(f"device: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}", flush=True)
    b_lat, b_loss = run_baseline(args.rate_hz, args.seconds)
    print(f"baseline pyzmq PUSH/PULL: n={b_lat.size} loss={b_loss:.5f} p50={np.percentile(b_lat, 50):.1f} us "
          f"p99={np.percentile(b_lat, 99):.1f} us max={b_lat.max():.1f} us", flush=True)
    lat, loss, sstats, cstats = run_bridge(args.rate_hz, args.seconds)
    print(f"bridge client->backend: n={lat.size} loss={loss:.5f} p50={np.percentile(lat, 50):.1f} us "
          f"p99={np.percentile(lat, 99):.1f} us max={lat.max():.1f} us", flush=True)
    n_sent = cstats.n_sent + cstats.n_dropped
    transport_loss = 1.0 - (sstats["accepted"] + sstats["rejected"]) / n_sent
    print(f"server: {sstats}; client: sent={cstats.n_sent} dropped={cstats.n_dropped} "
          f"rtt={cstats.rtt_us:.1f} us", flush=True)
    print(f"loss breakdown: never received by the server {transport_loss:.5f}, superseded by a newer target "
          f"before a tick (latest wins) {sstats['superseded'] / n_sent:.5f}; 'loss' below counts both", flush=True)
    out = {
        "p50_us": round(float(np.percentile(lat, 50)), 1),
        "p99_us": round(float(np.percentile(lat, 99)), 1),
        "max_us": round(float(lat.max()), 1),
        "loss": round(float(loss), 6),
        "baseline_p50_us": round(float(np.percentile(b_lat, 50)), 1),
        "baseline_p99_us": round(float(np.percentile(b_lat, 99)), 1),
        "ratio_p99": round(float(np.percentile(lat, 99) / np.percentile(b_lat, 99)), 3),
        "transport_loss": round(float(transport_loss), 6),
        "superseded": round(float(sstats["superseded"] / n_sent), 6),
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
