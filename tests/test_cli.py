"""The `realsim` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def realsim(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_subcommands() -> None:
    out = realsim("--help")
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout


def test_demo_writes_resolved_config_and_results(tmp_path: Path) -> None:
    out = realsim("demo", "--episodes", "2", "--seed", "5", "--set", "twin.max_episode_steps=4",
                  "--set", "device=cpu", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "success rate" in out.stdout
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["episodes"] == 2 and cfg["twin"]["max_episode_steps"] == 4 and cfg["twin"]["num_worlds"] == 2
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [e["seed"] for e in results["per_episode"]] == [5, 6]
    assert all(e["steps"] == 4 for e in results["per_episode"] if not e["success"])


def test_demo_rejects_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    out = realsim("demo", "--set", "twin.num_wrlds=3", "--out", str(tmp_path / "run"))
    assert out.returncode != 0
    assert "num_wrlds" in out.stderr
