"""Evaluation sharded over a real Ray cluster (started and stopped here with `ray start`): per-episode
results identical to a single-process run, and a worker killed mid-run has its units retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from launch._common import free_tcp_endpoints  # noqa: E402
from policies.evaluation.job import EvaluateConfig, LocalRunner, plan_units  # noqa: E402
from policies.evaluation.ray_executor import run_units_on_ray  # noqa: E402
from policies.evaluation.specs import parse_policy  # noqa: E402
from twin.config import TwinConfig  # noqa: E402

TWIN = TwinConfig(max_episode_steps=5)
SPECS = [parse_policy("expert:contacts=4,planner_worlds=16"), parse_policy("expert:contacts=6,planner_worlds=16")]
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster on loopback with 2 CPUs, as `ray start --head` runs it on a machine."""
    port = free_tcp_endpoints(1)[0].rsplit(":", 1)[1]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--node-ip-address=127.0.0.1", "--disable-usage-stats"], check=True, env=env,
                   capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _local(config: EvaluateConfig) -> dict[tuple[int, int], list[dict]]:
    runner = LocalRunner(replace(TWIN), SPECS, config, None)
    return {(u.policy, u.first): runner.run(u)[0] for u in plan_units(len(SPECS), config)}


@pytest.mark.timeout(900)
def test_ray_gives_the_single_process_results_and_retries_a_killed_workers_units(cluster) -> None:
    config = EvaluateConfig(episodes=4, worlds=2, videos=0, ray=cluster, ray_actors=2, ray_retries=2)
    expected = _local(config)
    units = plan_units(len(SPECS), config)

    got: dict[tuple[int, int], list[dict]] = {}
    run_units_on_ray(units, SPECS, TWIN, config, None, lambda u, res, tr, wall: got.__setitem__((u.policy, u.first), res))
    assert got == expected  # every episode of every unit, field for field

    # now a worker is killed (SIGKILL) while it runs a unit: its unit goes to another worker
    pids: list[int] = []
    done: list[tuple[int, int]] = []
    killed: list[int] = []

    def finished(unit, res, tr, wall) -> None:  # noqa: ANN001
        done.append((unit.policy, unit.first))
        got[(unit.policy, unit.first)] = res
        if not killed and len(pids) >= 2:
            victim = pids[1]  # a worker busy with its unit, or about to be given the next one
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    got.clear()
    run_units_on_ray(units, SPECS, TWIN, replace(config, ray_actors=2), None, finished, on_actors=pids.extend)
    assert killed and len(pids) >= 3  # a replacement actor was started
    assert sorted(got) == sorted(expected) and got == expected
    assert len(done) == len(set(done)) == len(units)  # each unit reported once
