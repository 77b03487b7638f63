"""Checkpoints in the layout LeRobot users know::

    DIR/config.json          the policy's type, features, hyper-parameters and the twin it was trained for
    DIR/model.safetensors    the weights, normalisation ranges included (``state_norm.*``, ``action_norm.*``)
    DIR/train_config.json    how it was trained (dataset, steps, seed, ...), when written by a trainer

Files are written to a temporary name and renamed into place, ``config.json`` last, so a crash never
leaves a checkpoint that looks complete but is not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from .config import PolicyConfig

__all__ = ["CheckpointError", "check_twin", "save_pretrained", "load_pretrained", "read_config", "CONFIG_NAME",
           "WEIGHTS_NAME", "TRAIN_CONFIG_NAME"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_CONFIG_NAME = "train_config.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt, or does not fit the job."""


def _write_atomic(path: Path, write) -> None:  # noqa: ANN001 - write(tmp_path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_pretrained(model, directory: str | Path, train_config: dict[str, Any] | None = None) -> Path:  # noqa: ANN001
    """Write ``model`` (a `model.ChunkModel`) and its config under ``directory``; returns it."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / CONFIG_NAME).unlink(missing_ok=True)  # incomplete until config.json is back
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_atomic(d / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    if train_config is not None:
        _write_atomic(d / TRAIN_CONFIG_NAME, lambda p: p.write_text(json.dumps(train_config, indent=2)))
    _write_atomic(d / CONFIG_NAME, lambda p: p.write_text(json.dumps(model.config.to_json(), indent=2)))
    return d


def read_config(directory: str | Path) -> PolicyConfig:
    """The ``PolicyConfig`` of a checkpoint (raises ``CheckpointError``)."""
    d = Path(directory)
    path = d / CONFIG_NAME
    if not d.is_dir():
        raise CheckpointError(f"{d} is not a checkpoint directory (it does not exist)")
    if not path.is_file():
        raise CheckpointError(f"{d} has no {CONFIG_NAME}: not a checkpoint, or one whose writing did not finish")
    try:
        return PolicyConfig.from_json(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a valid policy config: {exc}") from exc


def load_pretrained(directory: str | Path, device: str = "cpu"):  # noqa: ANN201 - ChunkModel
    """The `model.ChunkModel` saved under ``directory``, in eval mode on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .model import ChunkModel

    config = read_config(directory)
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or truncated: {exc}") from exc
    model = ChunkModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        raise CheckpointError(f"{weights} does not fit its config.json: missing {sorted(expected.keys() - got.keys())[:5]}, "
                              f"unexpected {sorted(got.keys() - expected.keys())[:5]}, wrong shape {wrong[:5]}")
    model.load_state_dict(state)
    if not (model.state_norm.is_set and model.action_norm.is_set):
        raise CheckpointError(f"{weights} holds no normalisation ranges")
    return model.to(device).eval()


def check_twin(config: PolicyConfig, twin) -> None:  # noqa: ANN001 - twin.config.TwinConfig
    """Refuse a checkpoint trained for another control rate (its actions would play at the wrong speed);
    log the other sections of the twin's configuration that differ from the one it was trained for
    (e.g. a block measured by the live loop), since the policy may then be out of its training data."""
    if config.twin is None:
        log.warning("the checkpoint does not say which twin it was trained for")
        return
    trained_hz = config.twin.get("control_hz")
    if trained_hz is not None and abs(float(trained_hz) - twin.control_hz) > 1e-9:
        raise CheckpointError(f"the checkpoint was trained at {trained_hz} Hz; this twin steps at {twin.control_hz} Hz")
    for f in dataclasses.fields(twin):
        trained = config.twin.get(f.name)
        if f.name in ("device", "num_worlds") or trained is None or not dataclasses.is_dataclass(getattr(twin, f.name)):
            continue
        now = json.loads(json.dumps(dataclasses.asdict(getattr(twin, f.name))))
        if now != trained:
            log.warning("the twin's %s differs from the one the policy was trained for", f.name)
