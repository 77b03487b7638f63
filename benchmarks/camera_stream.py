"""Camera stream throughput and latency: three 480x270 RGB-D cameras at 60 Hz over loopback ZMQ.

A publisher process sends synthetic frame sets (device timestamp = the publisher's monotonic clock at
capture) through ``twin.cameras.FramePublisher``; this process reads them with ``StreamSource``.

    python benchmarks/camera_stream.py                  # 10 s
    python benchmarks/camera_stream.py --duration-s 5 --cameras 3 --rate-hz 60

Prints figures, then as its last line JSON: {"fps": ..., "p99_latency_ms": ..., "mb_per_s": ...}
fps = complete frame sets per second read; latency = read return time minus capture time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _publisher(endpoint: str, cameras: int, width: int, height: int, rate_hz: float, duration_s: float, ready) -> None:
    from calibration import CameraIntrinsics
    from twin.cameras import CameraFrame, FramePublisher, PublisherConfig

    intr = CameraIntrinsics(380.0, 380.0, (width - 1) / 2, (height - 1) / 2, width, height)
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    depths = [rng.uniform(0.3, 2.0, (height, width)).astype(np.float32) for _ in range(4)]
    serials = [f"cam{i}" for i in range(cameras)]
    with FramePublisher(PublisherConfig(endpoint=endpoint)) as pub:
        ready.set()
        period = 1.0 / rate_hz
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < duration_s:
            now = time.monotonic_ns()
            frames = {
                s: CameraFrame(s, rgbs[(n + k) % 4], depths[(n + k) % 4], intr, None, now / 1e6, now, n, "system_time")
                for k, s in enumerate(serials)
            }
            pub.publish(frames)
            n += 1
            sleep = t0 + n * period - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--rate-hz", type=float, default=60.0)
    ap.add_argument("--port", type=int, default=0, help="loopback TCP port (0: a free one)")
    args = ap.parse_args(argv)

    from twin.cameras import FrameTimeoutError, StreamConfig, StreamSource

    port = args.port
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    warmup_s = 1.0
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=_publisher,
        args=(endpoint, args.cameras, args.width, args.height, args.rate_hz, args.duration_s + warmup_s + 1.0, ready),
        daemon=True,
    )
    proc.start()
    if not ready.wait(30.0):
        print("publisher did not start", file=sys.stderr)
        return 1
    serials = tuple(f"cam{i}" for i in range(args.cameras))
    latencies = []
    sets = 0
    with StreamSource(StreamConfig(endpoint=endpoint, serials=serials), max_frame_age_s=0.5, frame_timeout_s=2.0) as src:
        t_start = time.monotonic()
        while time.monotonic() - t_start < warmup_s:
            try:
                src.read(timeout_s=0.5)
            except FrameTimeoutError:
                pass
        bytes0 = src.bytes_received
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.duration_s:
            fs = src.read(timeout_s=2.0, allow_stale=True)
            done_ms = time.monotonic_ns() / 1e6
            sets += 1
            latencies.append(done_ms - min(f.device_time_ms for f in fs.values()))
        elapsed = time.monotonic() - t0
        nbytes = src.bytes_received - bytes0
        stats = src.stats()
    proc.join(timeout=10.0)
    lat = np.asarray(latencies)
    fps = sets / elapsed
    result = {
        "fps": round(fps, 2),
        "p99_latency_ms": round(float(np.percentile(lat, 99)), 3),
        "mb_per_s": round(nbytes / elapsed / 1e6, 2),
    }
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"cameras={args.cameras} {args.width}x{args.height} RGB + float32 depth at {args.rate_hz} Hz, {elapsed:.1f} s")
    print(f"sets read={sets} median latency={np.median(lat):.3f} ms p99={result['p99_latency_ms']} ms max={lat.max():.3f} ms")
    print(f"dropped per camera={stats.frames_dropped} stale sets={stats.stale_sets}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
