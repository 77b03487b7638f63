"""Evaluation of policies: seeded episodes in parallel twin worlds and their figures. Benchmarks and
`realsim demo` call these instead of carrying their own loops.

- `policies.evaluation.episodes`: `run_episodes` (one world per seed, batched), `nudge_blocks`.
- `policies.evaluation.metrics`: `success_interval` (95 % Wilson), `recovery_times` after disturbances.
"""

from .episodes import nudge_blocks, run_episodes
from .metrics import recovery_times, success_interval

__all__ = ["nudge_blocks", "recovery_times", "run_episodes", "success_interval"]
