"""What `realsim evaluate --policy` names: a policy spec, checked before any episode runs and built where
the episodes run (a spec is plain text, so it travels to Ray workers as it is).

- ``DIR``: a checkpoint written by ``realsim train`` (``DIR/config.json`` + ``DIR/model.safetensors``);
- ``expert``: the scripted planner; ``expert:KEY=VALUE,...`` with other `ExpertConfig` values (e.g.
  ``expert:contacts=4,planner_worlds=8`` plans from fewer candidates: a weaker expert);
- ``lerobot:DIR``: a checkpoint written by LeRobot's ``lerobot-train`` on a realsim dataset (``DIR`` its
  ``pretrained_model`` folder with LeRobot's config.json), run in LeRobot's own Python environment
  (`policies.lerobot_bridge`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from twin.config import TwinConfig

from ..base import Policy

__all__ = ["PolicySpec", "PolicySpecError", "parse_policy", "build_policy", "check_policy", "policy_names"]


class PolicySpecError(ValueError):
    """A policy spec that names nothing usable (the message says why)."""


@dataclass(frozen=True)
class PolicySpec:
    """A policy to evaluate: ``kind`` "checkpoint" or "lerobot" (``path``), or "expert" (``options``:
    ExpertConfig values)."""

    text: str
    kind: str
    path: str = ""
    options: tuple[tuple[str, object], ...] = ()


def parse_policy(text: str) -> PolicySpec:
    """The spec of ``text`` (see the module docstring); raises `PolicySpecError`."""
    text = str(text).strip()
    if text == "expert" or text.startswith("expert:"):
        from .._expert_config import ExpertConfig

        fields = {f.name: f for f in dataclasses.fields(ExpertConfig)}
        options = []
        for item in filter(None, text[len("expert:"):].split(",")) if ":" in text else ():
            key, sep, value = item.partition("=")
            if not sep or key not in fields:
                raise PolicySpecError(f"{text!r}: {item!r} is not KEY=VALUE with a key of ExpertConfig "
                                      f"({', '.join(sorted(fields))})")
            options.append((key, _expert_value(text, key, getattr(ExpertConfig(), key), value)))
        try:
            ExpertConfig(**dict(options))
        except (TypeError, ValueError) as exc:
            raise PolicySpecError(f"{text!r}: {exc}") from None
        return PolicySpec(text, "expert", options=tuple(options))
    if text.startswith("lerobot:"):
        from ..lerobot_bridge import LeRobotPolicyError, read_checkpoint

        directory = text[len("lerobot:"):]
        try:
            read_checkpoint(directory)
        except LeRobotPolicyError as exc:
            raise PolicySpecError(f"{text!r}: {exc}") from None
        return PolicySpec(text, "lerobot", path=str(Path(directory).resolve()))
    path = Path(text)
    if not path.is_dir():
        raise PolicySpecError(f"{text!r} is neither 'expert[:KEY=VALUE,...]' nor a checkpoint directory")
    return PolicySpec(text, "checkpoint", path=str(path.resolve()))


def _expert_value(text: str, key: str, default: object, value: str) -> object:
    """``value`` as the type of ExpertConfig's ``default`` (numbers and booleans only)."""
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise PolicySpecError(f"{text!r}: {key} needs true or false, got {value!r}")
        return value.lower() in ("true", "1")
    if not isinstance(default, (int, float)):
        raise PolicySpecError(f"{text!r}: {key} cannot be set in a spec (numbers and booleans only)")
    try:
        return type(default)(value)
    except ValueError:
        raise PolicySpecError(f"{text!r}: {key} needs a {type(default).__name__}, got {value!r}") from None


def build_policy(spec: PolicySpec, twin: TwinConfig, device: str = "cpu", seed: int = 0) -> Policy:
    """The policy of ``spec`` for ``twin`` (its ``num_worlds`` worlds); ``seed`` seeds a learned policy's noise."""
    if spec.kind == "expert":
        from .._expert_config import ExpertConfig
        from ..expert import PushTExpert

        return PushTExpert(twin, ExpertConfig(**dict(spec.options)))
    if spec.kind == "lerobot":
        from ..lerobot_bridge import LeRobotPolicy

        return LeRobotPolicy(spec.path, twin, device=device, seed=seed)
    from ..registry import make_policy

    return make_policy("learned", twin, checkpoint=spec.path, device=device, seed=seed)


def check_policy(spec: PolicySpec, twin: TwinConfig, device: str = "cpu") -> None:
    """Load ``spec``'s policy once for one world, so that one that cannot run fails before any episode
    (raises `PolicySpecError` with the reason)."""
    from ..learned.checkpoint import CheckpointError
    from ..lerobot_bridge import LeRobotPolicyError

    try:
        policy = build_policy(spec, dataclasses.replace(twin, num_worlds=1), device)
    except (CheckpointError, LeRobotPolicyError, ValueError, OSError) as exc:
        raise PolicySpecError(f"{spec.text}: {exc}") from exc
    if spec.kind == "lerobot":  # its policy process is started once and stopped
        policy.close()


def policy_names(specs: list[PolicySpec]) -> list[str]:
    """Short distinct names for output folders: "expert", or a checkpoint's folder names without the
    "checkpoints" / "pretrained_model" parts (``runs/train/flow/checkpoints/010000`` -> ``flow-010000``),
    prefixed "lerobot-" for a LeRobot checkpoint."""
    names = []
    for spec in specs:
        if spec.kind == "expert":
            name = spec.text.replace(":", "-").replace(",", "-").replace("=", "")
        else:
            parts = [p for p in Path(spec.path).parts if p not in ("checkpoints", "pretrained_model", "/")]
            name = "-".join(parts[-2:]) if parts else "policy"
            if spec.kind == "lerobot":
                name = f"lerobot-{name}"
        base, k = name, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names
