"""Evaluation units sharded over Ray actors (``realsim evaluate --ray``; Ray is an optional extra:
``pip install 'realsim[ray]'``).

Each actor holds one batched twin of W worlds (built once, on its own device: ``num_cpus=1`` and
``ray_gpus_per_actor`` of a GPU, so several pack onto one GPU) and builds each policy once. The driver
hands every free actor the next unit; a unit whose actor died (its process killed, its node lost) goes
back to the front of the queue for the next free actor, and a new actor takes the dead one's place: at
least once, which changes nothing because episodes are seeded (`job.Unit`). Every node needs realsim
installed, as for any Ray application.

``--ray auto`` joins the cluster `ray start` runs on this machine, ``HOST:PORT`` a remote one, and
``local`` starts a private one for this run.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from dataclasses import replace
from collections.abc import Callable, Sequence
from typing import Any

from twin.config import TwinConfig
from twin.state import TwinState

from .batched import EpisodeTrace
from .specs import PolicySpec

__all__ = ["run_units_on_ray"]

log = logging.getLogger("policies.evaluation")


class EvaluationActor:
    """What runs in a Ray actor: a `job.LocalRunner` (one batched twin, policies built once)."""

    def __init__(self, twin: TwinConfig, specs: Sequence[PolicySpec], config, start_state: TwinState | None) -> None:  # noqa: ANN001
        import torch

        from .job import LocalRunner

        torch.set_num_threads(1)  # one CPU per actor
        if config.device == "auto":  # each worker's own: its share of a GPU when Ray gave it one
            import warp as wp

            device = "cuda:0" if wp.is_cuda_available() else "cpu"
            config, twin = replace(config, device=device), replace(twin, device=device)
        self.runner = LocalRunner(twin, specs, config, start_state)

    def pid(self) -> int:
        return os.getpid()

    def run(self, unit) -> tuple[list[dict[str, Any]], dict[int, EpisodeTrace], float]:  # noqa: ANN001 - job.Unit
        return self.runner.run(unit)


def _connect(address: str) -> None:
    import ray

    if ray.is_initialized():
        return
    env = {"env_vars": {k: os.environ[k] for k in ("WARP_CACHE_PATH", "OMP_WAIT_POLICY") if k in os.environ}}
    if address == "local":
        ray.init(runtime_env=env, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, runtime_env=env, log_to_driver=False)


def run_units_on_ray(units: Sequence, specs: Sequence[PolicySpec], twin: TwinConfig, config, start_state: TwinState | None,  # noqa: ANN001
                     finished: Callable[[Any, list[dict[str, Any]], dict[int, EpisodeTrace], float], None],
                     on_actors: Callable[[list[int]], None] | None = None) -> None:
    """Run every unit on Ray actors; ``finished(unit, results, traces, wall_s)`` as each completes (a unit
    retried after a failure reports once). ``on_actors(pids)`` is told the actors' process ids once they
    are up (and again with a replacement's). Raises ``RuntimeError`` when a unit failed more than
    ``config.ray_retries`` times, or ``ImportError`` when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise ImportError("--ray needs Ray: pip install 'realsim[ray]'") from None
    from ray.exceptions import RayActorError

    _connect(config.ray)
    remote = ray.remote(num_cpus=1, num_gpus=config.ray_gpus_per_actor)(EvaluationActor)
    count = config.ray_actors or max(1, int(ray.available_resources().get("CPU", 1)))
    count = min(count, len(units))

    def start() -> Any:
        return remote.remote(twin, list(specs), config, start_state)

    actors = [start() for _ in range(count)]
    if on_actors is not None:
        on_actors(ray.get([a.pid.remote() for a in actors]))
    pending, inflight, failures = deque(units), {}, Counter()

    def submit(i: int) -> None:
        unit = pending.popleft()
        inflight[actors[i].run.remote(unit)] = (i, unit)

    for i in range(count):
        if pending:
            submit(i)
    t0 = time.perf_counter()
    while inflight:
        (ref,), _ = ray.wait(list(inflight), num_returns=1)
        i, unit = inflight.pop(ref)
        try:
            results, traces, wall = ray.get(ref)
        except RayActorError as exc:
            failures[unit] += 1
            if failures[unit] > config.ray_retries:
                raise RuntimeError(f"evaluation unit {unit} failed {failures[unit]} times; last: {exc}") from exc
            log.warning("a Ray worker died running %s (try %d); the unit goes to the next free worker",
                        unit, failures[unit])
            pending.appendleft(unit)
            actors[i] = start()
            if on_actors is not None:
                on_actors([ray.get(actors[i].pid.remote())])
            submit(i)
            continue
        finished(unit, results, traces, wall)
        if pending:
            submit(i)
    log.info("%d units on %d Ray actors in %.1f s (%d retried)", len(units), count, time.perf_counter() - t0,
             sum(failures.values()))
    for a in actors:
        ray.kill(a)
