"""The live loop, shared by `realsim deploy` and `realsim collect`: the corrected twin runs a policy while
the real robot follows.

- `twin.live.config`: `LiveConfig`, grouped: `LiveLinks` (robot, cameras, the simulated workspace's
  channels), `RobotFollowConfig`, the block tracker's rules (`twin.perception.tracker`), `EpisodeRules`.
- `twin.live.runner`: `LiveRunner` (the loop only) and `LiveLinkError`.
- `twin.live.rules`: `SuccessWindow`, `DivergenceCheck`.
- `twin.live.metrics`: `StepRecord`, `TruthAlignment` and the fidelity figures.
- `twin.live.recorder`: `LiveRecorder` (metrics.json, a rerun recording, plots).
"""

from .config import EpisodeRules, LiveConfig, LiveLinks, RobotFollowConfig
from .metrics import StepRecord, TruthAlignment
from .rules import DivergenceCheck, SuccessWindow
from .runner import LiveLinkError, LiveRunner

__all__ = ["DivergenceCheck", "EpisodeRules", "LiveConfig", "LiveLinkError", "LiveLinks", "LiveRunner",
           "RobotFollowConfig", "StepRecord", "SuccessWindow", "TruthAlignment"]
