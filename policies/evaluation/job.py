"""`realsim evaluate`'s work: policies in batched twins, locally or sharded over a Ray cluster, and what it
writes per policy (``eval_info.json``, videos) and across them (``summary.json``, the table).

Units of work are (policy, a run of at most W consecutive episodes); a unit's episodes are seeded
(episode ``e`` has seed ``seed + e``), so a unit run twice gives the same results and a unit retried after
a failed Ray worker changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from twin.config import TwinConfig
from twin.live.config import EpisodeRules
from twin.perception.tracker import BlockTrackerConfig
from twin.state import TwinState

from ..base import Policy
from .batched import BatchEvaluator, EpisodeTrace, evaluate_seeds
from .report import eval_info, summary_table, write_json
from .observation_noise import NoisyObservations, ObservationNoiseConfig
from .rules import EPISODE_ENDS, LiveEpisodeEnd
from .specs import PolicySpec, build_policy, policy_names

__all__ = ["EvaluateConfig", "Unit", "evaluate_policies", "plan_units"]

log = logging.getLogger("policies.evaluation")


@dataclass(frozen=True)
class EvaluateConfig:
    """An evaluation: which episodes, how many worlds per batch, videos, where it runs."""

    #: Episodes per policy; episode ``e`` has seed ``seed + e`` (held-out seeds start at 1000).
    episodes: int = 50
    seed: int = 1000
    #: W, the twin's worlds per batch.
    worlds: int = 16
    #: Videos of the first ``videos`` episodes of each policy.
    videos: int = 2
    #: Where the twins and policies run ("cpu", "cuda:0"), resolved by the caller; "auto" lets each Ray worker
    #: take CUDA when it has a GPU.
    device: str = "cpu"
    #: Seed of the learned policies' sampling noise (with each episode's seed).
    policy_seed: int = 0
    #: How episodes end and are judged (`policies.evaluation.rules`): "live", as `realsim deploy` ends a live
    #: episode by ``rules`` and judges it by the coverage where it ended; "live_belief", the same with the
    #: success window reading the block as the policy observes it (with ``observation_noise``), as the live
    #: window reads the twin's estimate; "first_reach", gym-pusht's (success at the first step whose coverage
    #: reaches the goal's).
    episode_end: str = "live"
    rules: EpisodeRules = field(default_factory=EpisodeRules)
    #: A step touches the block when the pusher's path comes within its radius plus this [m] (the live
    #: block tracker's ``contact_margin_m``; a touching step does not count towards holding the goal).
    contact_margin_m: float = BlockTrackerConfig().contact_margin_m
    #: Noise on the block pose the policies observe: the live twin's estimate is that far off the real block
    #: (`policies.evaluation.observation_noise`; ``position_m=0`` and ``yaw_rad=0``: exact observations).
    observation_noise: ObservationNoiseConfig = field(default_factory=ObservationNoiseConfig)
    #: "" runs here; "auto" or a Ray address ("host:port") shards the units over that Ray cluster.
    ray: str = ""
    #: Ray actors (0: one per CPU the cluster offers, at most the units) and each one's share of a GPU.
    ray_actors: int = 0
    ray_gpus_per_actor: float = 0.0
    #: How often a unit is tried again after the worker running it died.
    ray_retries: int = 3

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.worlds < 1 or self.videos < 0 or self.ray_actors < 0 or self.ray_retries < 0:
            raise ValueError("episodes and worlds must be >= 1; videos, ray_actors and ray_retries >= 0")
        if not 0 <= self.ray_gpus_per_actor <= 1:
            raise ValueError("ray_gpus_per_actor must be in [0, 1]")
        if self.episode_end not in EPISODE_ENDS:
            raise ValueError(f"episode_end must be one of {EPISODE_ENDS}, got {self.episode_end!r}")
        if self.contact_margin_m < 0:
            raise ValueError("contact_margin_m must be >= 0")

    def live_end(self, twin: TwinConfig) -> Callable[[int], LiveEpisodeEnd] | None:
        """W -> the live rules for W worlds of ``twin`` (None under "first_reach")."""
        if self.episode_end == "first_reach":
            return None
        on_belief = self.episode_end == "live_belief"
        return lambda worlds: LiveEpisodeEnd(self.rules, twin, self.contact_margin_m, worlds, on_belief)

    def observed(self, policy: Policy, twin: TwinConfig) -> Policy:
        """``policy`` observing the block as it would live: with ``observation_noise`` (when enabled)."""
        if not self.observation_noise.enabled:
            return policy
        return NoisyObservations(policy, twin, self.observation_noise)


@dataclass(frozen=True)
class Unit:
    """A run of consecutive episodes of one policy: ``first`` is the episode index of ``seeds[0]``."""

    policy: int
    first: int
    seeds: tuple[int, ...]


def plan_units(policies: int, config: EvaluateConfig) -> list[Unit]:
    """Every policy's episodes cut into runs of at most W."""
    seeds = [config.seed + e for e in range(config.episodes)]
    return [Unit(p, start, tuple(seeds[start:start + config.worlds]))
            for p in range(policies) for start in range(0, config.episodes, config.worlds)]


class LocalRunner:
    """Runs units in this process: one batched twin, built once, and each policy built once."""

    def __init__(self, twin: TwinConfig, specs: Sequence[PolicySpec], config: EvaluateConfig,
                 start_state: TwinState | None) -> None:
        self.evaluator = BatchEvaluator(twin, config.worlds)
        self.specs, self.config, self.start_state = list(specs), config, start_state
        self._policies: dict[int, Any] = {}

    def run(self, unit: Unit, progress: Callable[[int, int], None] | None = None,
            ) -> tuple[list[dict[str, Any]], dict[int, EpisodeTrace], float]:
        if unit.policy not in self._policies:
            policy = build_policy(self.specs[unit.policy], self.evaluator.config, self.config.device, self.config.policy_seed)
            self._policies[unit.policy] = self.config.observed(policy, self.evaluator.config)
        videos = max(0, self.config.videos - unit.first)
        return evaluate_seeds(self.evaluator, self._policies[unit.policy], unit.seeds, self.start_state, videos, progress,
                              self.config.live_end(self.evaluator.config))


def evaluate_policies(specs: Sequence[PolicySpec], twin: TwinConfig, config: EvaluateConfig, out: Path,
                      start_state: TwinState | None = None, progress: bool = True, scene_path: str = "",
                      reuse: bool = False) -> dict[str, dict[str, Any]]:
    """Evaluate every policy on the same episodes; write ``out/<name>/eval_info.json`` and its videos, and
    ``out/summary.json``. Returns name -> eval_info. With a start state the twin takes its block. Ctrl-C
    writes what finished so far (``"interrupted": true``, the episodes done in episode order) and raises
    ``KeyboardInterrupt``. ``reuse``: a policy whose ``eval_info.json`` in ``out`` is a finished evaluation
    of the same episodes with the same settings (`finished_evaluation`) is not evaluated again."""
    if start_state is not None:
        twin = replace(twin, block=start_state.block)
    all_names = policy_names(list(specs))
    kept = {n: info for n, spec in zip(all_names, specs)
            if reuse and (info := finished_evaluation(out / n, _settings(spec, twin, config, start_state, scene_path))) is not None}
    for name in kept:
        log.info("%s: the finished evaluation in %s is kept", name, out / name)
    todo = [i for i, n in enumerate(all_names) if n not in kept]
    specs, names = [specs[i] for i in todo], [all_names[i] for i in todo]
    units = plan_units(len(specs), config)
    results: dict[int, dict[int, list[dict[str, Any]]]] = {p: {} for p in range(len(specs))}
    traces: dict[int, dict[int, EpisodeTrace]] = {p: {} for p in range(len(specs))}
    seconds: dict[int, float] = {p: 0.0 for p in range(len(specs))}
    bars = {p: tqdm(total=config.episodes, desc=names[p], unit="ep", disable=not progress, position=p)
            for p in range(len(specs))}
    t0 = time.perf_counter()
    interrupted = False
    try:
        if specs and config.ray:
            from .ray_executor import run_units_on_ray

            def finished(unit: Unit, episodes: list[dict[str, Any]], tr: dict[int, EpisodeTrace], wall: float) -> None:
                _collect(unit, episodes, tr, wall, results, traces, seconds)
                done = [r for rs in results[unit.policy].values() for r in rs]
                bars[unit.policy].n = len(done)
                bars[unit.policy].set_postfix(success=f"{sum(r['success'] for r in done) / len(done):.2f}")

            run_units_on_ray(units, specs, twin, config, start_state, finished)
        elif specs:
            runner = LocalRunner(twin, specs, config, start_state)
            for unit in units:
                bar = bars[unit.policy]
                before = [r for rs in results[unit.policy].values() for r in rs]
                base_n, base_s = len(before), sum(r["success"] for r in before)

                def tick(n: int, s: int, bar=bar, base_n=base_n, base_s=base_s) -> None:  # noqa: ANN001
                    bar.n = base_n + n
                    bar.set_postfix(success=f"{(base_s + s) / max(1, base_n + n):.2f}", refresh=False)
                    bar.refresh()

                episodes, tr, wall = runner.run(unit, tick)
                _collect(unit, episodes, tr, wall, results, traces, seconds)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for bar in bars.values():
            bar.close()
    infos = {}
    for p, spec in enumerate(specs):
        episodes = [r for first in sorted(results[p]) for r in results[p][first]]
        if not episodes:  # interrupted before any of its units finished
            continue
        folder = out / names[p]
        videos = [] if interrupted else _write_videos(twin, traces[p], folder, config, scene_path)
        infos[names[p]] = eval_info(episodes, seconds[p], videos, _settings(spec, twin, config, start_state, scene_path) | {
            "worlds": config.worlds, "device": config.device, "interrupted": interrupted})
        write_json(folder / "eval_info.json", infos[names[p]])
    infos = {n: kept[n] if n in kept else infos[n] for n in all_names if n in kept or n in infos}
    if infos:
        write_json(out / "summary.json", {"policies": {n: i["aggregated"] | {"policy": i["policy"]} for n, i in infos.items()},
                                          "wall_s": time.perf_counter() - t0, "ray": config.ray or None,
                                          "interrupted": interrupted})
        (out / "summary.txt").write_text(summary_table(infos) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    return infos


def _settings(spec: PolicySpec, twin: TwinConfig, config: EvaluateConfig, start_state: TwinState | None,
              scene_path: str) -> dict[str, Any]:
    """What an ``eval_info.json``'s results depend on (not the batch size or the device: episodes are seeded);
    the twin's config as a digest."""
    twin_text = json.dumps(asdict(replace(twin, num_worlds=1, device="")), sort_keys=True, default=str)
    return {"policy": spec.text, "seeds": [config.seed, config.seed + config.episodes - 1],
            "twin_digest": hashlib.sha256(twin_text.encode()).hexdigest()[:16], "scene": scene_path,
            "policy_seed": config.policy_seed,
            "from_state": None if start_state is None else start_state.meta, "episode_end": config.episode_end,
            "rules": asdict(config.rules), "contact_margin_m": config.contact_margin_m,
            "observation_noise": asdict(config.observation_noise)}


def finished_evaluation(folder: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """``folder/eval_info.json`` if it holds a finished (not interrupted) evaluation with these settings
    (`_settings`), else None."""
    path = folder / "eval_info.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    if info.get("interrupted", True) or len(info["per_episode"]) != settings["seeds"][1] - settings["seeds"][0] + 1:
        return None
    return info if json.loads(json.dumps(settings)) == {k: info.get(k) for k in settings} else None


def _collect(unit: Unit, out: list[dict[str, Any]], tr: dict[int, EpisodeTrace], wall: float, results: dict,
             traces: dict, seconds: dict) -> None:
    """File a unit's results (a unit that came back twice, after a retry, counts once)."""
    results[unit.policy][unit.first] = out
    traces[unit.policy].update({unit.first + i: t for i, t in tr.items()})
    seconds[unit.policy] += wall


def _write_videos(twin: TwinConfig, traces: dict[int, EpisodeTrace], folder: Path, config: EvaluateConfig,
                  scene_path: str) -> list[str]:
    if not traces or config.videos == 0:
        return []
    from .video import EpisodeVideoWriter

    writer = EpisodeVideoWriter(twin, scene_path=scene_path, device="cuda" if config.device.startswith("cuda") else "cpu")
    return [str(writer.write(traces[e], folder / "videos" / f"eval_episode_{e}.mp4"))
            for e in sorted(traces) if e < config.videos]
