"""Typed configs: YAML, command-line overrides, clear errors, resolved config saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from launch.config import ConfigError, load_config, save_config
from twin.config import TwinConfig, WorkspaceConfig


@dataclass(frozen=True)
class Inner:
    gain: float = 1.0
    names: tuple[str, ...] = ("a",)


@dataclass(frozen=True)
class Outer:
    episodes: int = 4
    device: str = "auto"
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("episodes: 7\ninner:\n  gain: 2\n")
    cfg = load_config(Outer, f, ["inner.names=[x, y]", "device=cpu"])
    assert cfg == Outer(episodes=7, device="cpu", inner=Inner(gain=2.0, names=("x", "y")))
    assert isinstance(cfg.inner.gain, float)


def test_unknown_key_and_wrong_type_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key.*episode"):
        load_config(Outer, None, ["episode=3"])
    with pytest.raises(ConfigError, match="inner.gain.*number"):
        load_config(Outer, None, ["inner.gain=fast"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Outer, None, ["episodes"])


def test_twin_config_round_trip(tmp_path: Path) -> None:
    cfg = load_config(TwinConfig, None, ["num_worlds=3", "block.friction=0.3", "physics.substeps=8"])
    assert cfg.num_worlds == 3 and cfg.block.friction == 0.3 and cfg.physics.substeps == 8
    path = save_config(cfg, tmp_path / "resolved.yaml")
    assert yaml.safe_load(path.read_text())["block"]["friction"] == 0.3
    assert load_config(TwinConfig, path) == cfg


def test_invalid_values_are_rejected_by_the_config_itself() -> None:
    with pytest.raises(ValueError, match="velocity_limit_scale"):
        load_config(TwinConfig, None, ["robot.velocity_limit_scale=1.5"])


@dataclass(frozen=True)
class Deep:
    outer: Outer = field(default_factory=lambda: Outer(episodes=9, inner=Inner(gain=5.0, names=("p", "q"))))


def test_overrides_keep_the_parents_defaults_at_every_depth() -> None:
    cfg = load_config(Deep, None, ["outer.inner.gain=7"])
    assert cfg.outer.episodes == 9
    assert cfg.outer.inner == Inner(gain=7.0, names=("p", "q"))


def test_workspace_clips_points_and_says_how_far_outside_they_lie() -> None:
    ws = WorkspaceConfig(x_range_m=(0.4, 0.6), y_range_m=(-0.1, 0.1))
    points = np.array([[0.5, 0.0], [0.45, 0.08], [0.65, 0.0], [0.5, -0.13], [0.7, 0.3], [0.6, 0.1]])
    np.testing.assert_allclose(ws.distance_outside(points), [-0.1, -0.02, 0.05, 0.03, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(ws.clip(points), [[0.5, 0.0], [0.45, 0.08], [0.6, 0.0], [0.5, -0.1], [0.6, 0.1], [0.6, 0.1]])
    assert ws.distance_outside(points[:, None]).shape == (6, 1)  # one distance per point, any leading shape
    assert float(ws.distance_outside(np.array([0.3, 0.0]))) == pytest.approx(0.1)


def test_numbers_in_exponent_form_are_numbers_on_the_command_line() -> None:
    from launch.config import parse_override

    assert parse_override("optim.lr=1e-3") == (["optim", "lr"], 0.001)
    assert parse_override("a=2E+2") == (["a"], 200.0)
    assert parse_override("a=1.5e-4")[1] == 1.5e-4
    assert parse_override("name=e5") == (["name"], "e5")  # not a number
