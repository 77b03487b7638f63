"""Evaluation of policies: seeded episodes in batched twins and their figures. `realsim evaluate`,
`realsim train`'s periodic evaluation, benchmarks and `realsim demo` call these instead of carrying their
own loops.

- `batched`: `BatchEvaluator` (one twin of W worlds, built once, runs batches of seeded episodes),
  `evaluate_seeds`, `EpisodeTrace` (an episode's states, for videos);
- `episodes`: `run_episodes` (one world per seed, gym-pusht's first reach, exact states), `nudge_blocks`;
- `rules`: episodes ended and judged as the live loop does (`realsim evaluate`'s default);
- `observation_noise`: the block observed with the live twin's estimation error (`realsim evaluate`'s default);
- `specs`: what ``--policy`` names (checkpoints, the expert), checked before any episode;
- `job`: the evaluate job (units of (policy, seed run), local or over Ray: `ray_executor`), its outputs
  (`report`: ``eval_info.json`` in LeRobot's shape, the summary table; `video`: MP4 per episode);
- `correlation` and `comparison`: twin vs live success across policies (Pearson, Spearman, MMRV, plot);
- `metrics`: `success_interval` (95 % Wilson), `recovery_times` after disturbances.
"""

from .episodes import nudge_blocks, run_episodes
from .metrics import recovery_times, success_interval

__all__ = ["nudge_blocks", "recovery_times", "run_episodes", "success_interval"]
