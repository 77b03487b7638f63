"""Tools to test a robot bridge server from outside, over its real sockets: a backend that records
every command crossing the backend boundary and measures it against the caps, a raw protocol client
that can send anything at all, and a protocol-aware fuzzer. Used by the project's tests and
``benchmarks/safety_fuzz.py``; also meant for checking a new backend the same way."""

from ._client import RawClient, running_server, stream, wait_until
from ._fuzz import FuzzConfig, FuzzReport, run_fuzz
from ._recording import Record, RecordingBackend, assert_commands_within_limits, motion_ratios

__all__ = ["RawClient", "running_server", "stream", "wait_until", "FuzzConfig", "FuzzReport", "run_fuzz", "Record",
           "RecordingBackend", "assert_commands_within_limits", "motion_ratios"]
