"""Policies by name: what the jobs can run (``realsim deploy --set policy=NAME``). Each entry builds a
`policies.base.Policy` for a twin configuration; options a policy does not take are ignored.

    from policies.registry import make_policy
    policy = make_policy("expert", twin_config, expert=LIVE_EXPERT)

Built in: ``expert`` (the scripted planner, `policies.expert`), ``teleop`` (a person through a
teleoperation device, `policies.teleop`) and ``learned`` (a trained checkpoint, `policies.learned`:
``make_policy("learned", twin, checkpoint="runs/train/checkpoints/last/pretrained_model")``). Entries are listed
explicitly (never registered by import side effects), and each imports its module only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twin.config import TwinConfig

    from .base import Policy

__all__ = ["PolicyEntry", "POLICIES", "make_policy", "register_policy"]


@dataclass(frozen=True)
class PolicyEntry:
    """A policy the jobs can run by name."""

    name: str
    description: str
    build: Callable[..., "Policy"]  # (twin_config, **options) -> Policy


def _expert(twin: "TwinConfig", expert=None, **_: Any) -> "Policy":  # noqa: ANN001 - ExpertConfig
    from .expert import LIVE_EXPERT, PushTExpert

    return PushTExpert(twin, LIVE_EXPERT if expert is None else expert)


def _teleop(twin: "TwinConfig", teleop=None, on_act=None, **_: Any) -> "Policy":  # noqa: ANN001
    from .teleop import TeleopPolicy

    if teleop is None:
        raise ValueError("the teleop policy needs a connected teleoperator (teleop=...)")
    return TeleopPolicy(teleop, on_act)


def _learned(twin: "TwinConfig", checkpoint: str = "", device: str = "cpu", seed: int = 0, **_: Any) -> "Policy":
    from .learned.checkpoint import check_twin
    from .learned.policy import LearnedPolicy

    if not checkpoint:
        raise ValueError("the learned policy needs a checkpoint directory (checkpoint=..., --policy DIR)")
    policy = LearnedPolicy.from_pretrained(checkpoint, seed=seed, device=device,  # "cpu", "cuda:0": Warp's and torch's
                                           twin=twin)
    check_twin(policy.config, twin)
    return policy


POLICIES: dict[str, PolicyEntry] = {
    "expert": PolicyEntry("expert", "the scripted PushT planner (sampling pushes in parallel twins)", _expert),
    "teleop": PolicyEntry("teleop", "a person through a teleoperation device", _teleop),
    "learned": PolicyEntry("learned", "a trained Diffusion Policy or flow-matching checkpoint", _learned),
}


def register_policy(entry: PolicyEntry) -> None:
    """Add a policy by name (a name already taken is an error)."""
    if entry.name in POLICIES:
        raise ValueError(f"a policy named {entry.name!r} is already registered")
    POLICIES[entry.name] = entry


def make_policy(name: str, twin: "TwinConfig", **options: Any) -> "Policy":
    """Build the policy registered as ``name`` for ``twin``. Raises ``ValueError`` for an unknown name,
    listing the known ones."""
    entry = POLICIES.get(name)
    if entry is None:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return entry.build(twin, **options)
