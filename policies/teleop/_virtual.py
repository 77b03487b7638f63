"""The virtual operator: the scripted PushT expert driving collection (headless, deterministic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._base import Teleoperator

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

    from ..expert import ExpertConfig

__all__ = ["VirtualOperator"]


class VirtualOperator(Teleoperator):
    """Gives the targets of ``policies.expert.PushTExpert`` for the one live world."""

    name = "virtual"

    def __init__(self, twin: "TwinConfig", expert: "ExpertConfig | None" = None) -> None:
        super().__init__()
        from ..expert import ExpertConfig, PushTExpert

        self.expert = PushTExpert(twin, expert or ExpertConfig())

    def reset(self) -> None:
        self.expert.reset()

    def set_twin_config(self, config: "TwinConfig") -> None:
        self.expert.set_twin_config(config)

    def get_action(self, obs: "Observation") -> np.ndarray:
        return np.asarray(self.expert.act(obs.select(slice(0, 1)))[0], dtype=np.float64)
