"""NTP-style clock offset estimation between two machines (pure: no I/O, no clock reads).

One exchange gives four timestamps: the requester sends at ``t1`` (requester clock), the responder
receives at ``t2`` and replies at ``t3`` (responder clock), the requester receives at ``t4``::

    offset = ((t2 - t1) + (t3 - t4)) / 2      # responder clock - requester clock [ns]
    delay  = (t4 - t1) - (t3 - t2)            # round-trip time spent on the wire [ns]

The error of one sample is at most ``delay / 2``. Like NTP's clock filter, the estimate is the offset of
the lowest-delay sample among the most recent ones (a bounded window), so queueing delays do not bias
it and slow drift is followed as old samples leave the window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["ClockSample", "ClockSync"]


@dataclass(frozen=True, slots=True)
class ClockSample:
    offset_ns: int  # responder clock - requester clock [ns]
    delay_ns: int  # round trip on the wire [ns]


class ClockSync:
    """Tracks the offset of a remote clock from one exchange after another.

    Args:
        window: number of recent samples kept (bounded).
        max_delay_ns: samples with a longer round trip are ignored (their error bound is too large).
    """

    def __init__(self, window: int = 32, max_delay_ns: int = 50_000_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._samples: deque[ClockSample] = deque(maxlen=window)
        self._max_delay_ns = int(max_delay_ns)
        self.n_rejected = 0

    def add(self, t1: int, t2: int, t3: int, t4: int) -> ClockSample | None:
        """Add one exchange; returns the sample, or None when it is implausible and was dropped."""
        delay = (t4 - t1) - (t3 - t2)
        if t4 < t1 or t3 < t2 or delay < 0 or delay > self._max_delay_ns:
            self.n_rejected += 1
            return None
        sample = ClockSample(offset_ns=((t2 - t1) + (t3 - t4)) // 2, delay_ns=delay)
        self._samples.append(sample)
        return sample

    @property
    def synced(self) -> bool:
        return bool(self._samples)

    def best(self) -> ClockSample | None:
        """The lowest-delay sample of the window (None before the first sample)."""
        if not self._samples:
            return None
        return min(self._samples, key=lambda s: s.delay_ns)

    @property
    def offset_ns(self) -> int:
        """Responder clock minus requester clock [ns]; 0 before the first sample."""
        b = self.best()
        return 0 if b is None else b.offset_ns

    @property
    def uncertainty_ns(self) -> int:
        """Bound on the offset error [ns] (half the best round trip); 0 before the first sample."""
        b = self.best()
        return 0 if b is None else b.delay_ns // 2

    def reset(self) -> None:
        self._samples.clear()
