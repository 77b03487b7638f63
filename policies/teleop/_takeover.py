"""Shared control: a policy drives the one live world and the operator takes over by moving their
teleoperator (``realsim collect --policy DIR``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..base import Policy
from ._base import Teleoperator, read_target

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

__all__ = ["TakeoverPolicy"]

log = logging.getLogger(__name__)


class TakeoverPolicy(Policy):
    """``policy`` acts while the operator leaves the teleoperator alone; while they give input
    (``Teleoperator.giving_input``) the teleoperator's target drives instead, starting from the pusher.
    When they let go, the policy starts afresh (``reset``: a new observation history and action queue)
    from where they left the pusher. ``teleop`` None: the policy drives alone.

    ``by_operator`` says who chose the last action; ``operator_steps`` and ``takeovers`` count this
    episode's operator actions and take-overs. ``on_act(obs)`` is called with the observation each
    action is taken from (before the twin steps). One world only, as the live loop runs.
    """

    def __init__(self, policy: Policy, teleop: Teleoperator | None,
                 on_act: Callable[["Observation"], None] | None = None) -> None:
        self.policy = policy
        self.teleop = teleop
        self.on_act = on_act
        self.by_operator = False
        self.operator_steps = 0
        self.takeovers = 0

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        self.policy.reset(worlds, seeds)
        if self.teleop is not None:
            self.teleop.reset()
            self.teleop.forget_input()
        self.by_operator = False
        self.operator_steps = 0
        self.takeovers = 0

    def set_twin_config(self, config: "TwinConfig") -> None:
        self.policy.set_twin_config(config)
        if self.teleop is not None:
            self.teleop.set_twin_config(config)

    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        if self.on_act is not None:
            self.on_act(obs)
        if self.teleop is None:
            return np.asarray(self.policy.act(obs, active), dtype=np.float64).reshape(1, 2)
        target = read_target(self.teleop, obs)  # drains the device every step
        if self.teleop.giving_input:
            if not self.by_operator:
                self.takeovers += 1
                log.info("the operator takes over")
            self.by_operator = True
            self.operator_steps += 1
            return target[None]
        if self.by_operator:
            log.info("the policy drives again")
            self.policy.reset()
            self.by_operator = False
        self.teleop.reset()  # the operator's next input starts at the pusher, not at a stale target
        return np.asarray(self.policy.act(obs, active), dtype=np.float64).reshape(1, 2)
