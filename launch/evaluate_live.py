"""The live half of `realsim evaluate --compare-live`: each policy runs the same seeded episodes through
the whole live stack (cameras -> correction -> twin -> bridge -> robot) on a freshly started simulated
workspace (the same seed, so the same domain gap for every policy), or on hardware with a deploy config
(``--live-config``; the operator resets the scene). Each policy's episodes are written to
``live/<name>.json`` as soon as they are done (`policies.evaluation.comparison`)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from policies.evaluation.comparison import live_record
from policies.evaluation.report import write_json
from policies.evaluation.specs import PolicySpec, build_policy
from twin.config import TwinConfig

from .config import load_config
from .deploy import DeployConfig, start_world, stop_process

__all__ = ["run_live", "live_config", "load_partial", "PARTIAL"]

log = logging.getLogger("realsim.evaluate")


def live_config(path: str | Path | None, twin: TwinConfig) -> DeployConfig:
    """The deploy config of the live half: the file at ``path`` (e.g. hardware links), or else the defaults with
    nobody nudging the block (the twin's episodes have no such disturbance, and an evaluation on the robot none
    either, so random nudges would add a difference the comparison does not mean to measure); the twin's
    config with one world either way."""
    cfg = load_config(DeployConfig, path, [])
    if path is None:
        cfg = replace(cfg, world=cfg.world.hands_off())
    return replace(cfg, live=replace(cfg.live, twin=replace(twin, num_worlds=1)))


def run_live(specs: list[PolicySpec], names: list[str], cfg: DeployConfig, episodes: int, seed: int, out: Path,
             policy_seed: int = 0) -> dict[str, dict]:
    """``episodes`` live episodes (seeds ``seed``...) per policy; returns name -> the ``live/<name>.json`` record.

    Live episodes take real time, so none that finished is lost: when a policy's run is interrupted (Ctrl-C,
    raised on) or its links fail (logged, the next policy goes on), its finished episodes are kept in
    ``live/<name>/partial.json``, and the next call for that policy and ``seed`` starts at the first episode
    not done, on a workspace started with the same seed (the same domain gap)."""
    from sim_workspace.clients import clients_for
    from twin.live import LiveLinkError, LiveRunner

    live = replace(cfg.live, episodes=episodes, seed=seed, twin=replace(cfg.live.twin, num_worlds=1))
    cfg = replace(cfg, live=live)
    records = {}
    for spec, name in zip(specs, names):
        record_path, run_dir = out / "live" / f"{name}.json", out / "live" / name
        if (kept := _finished_record(record_path, spec.text, seed, episodes)) is not None:
            log.info("%s: the finished live episodes in %s are kept", name, record_path)
            records[name] = kept
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        done = load_partial(run_dir / PARTIAL, spec.text, seed)[:episodes]
        log.info("live episodes of %s (%d, seeds %d-%d)%s", name, episodes, seed, seed + episodes - 1,
                 f": going on after the {len(done)} kept in {run_dir / PARTIAL}" if done else "")
        world, run_cfg, runner, summary = None, cfg, None, {}
        try:
            if len(done) < episodes:
                if cfg.start_world:
                    world, run_cfg = start_world(cfg, run_dir)
                control, truth = clients_for(run_cfg.live.links.control_endpoint, run_cfg.live.links.truth_endpoint)
                policy = build_policy(spec, run_cfg.live.twin, run_cfg.live.twin.device, policy_seed)
                runner = LiveRunner(run_cfg.live, policy, device=run_cfg.live.twin.device, world=control, truth=truth)
                summary = runner.run(first_episode=len(done))
        except LiveLinkError as exc:
            log.error("%s: live run stopped after %d episodes: %s; run again to go on", name,
                      len(done) + len(runner.episodes if runner else []), exc)
            _keep_partial(run_dir, spec.text, seed, done + (runner.episodes if runner else []))
            continue
        except KeyboardInterrupt:
            if runner is not None:
                _keep_partial(run_dir, spec.text, seed, done + runner.episodes)
            raise
        finally:
            if runner is not None:
                runner.close()
            stop_process(world)
        records[name] = live_record(spec.text, done + summary.get("episodes", []), {
            "twin_vs_truth_aligned": summary.get("twin_vs_truth_aligned"), "correction_hz": summary.get("correction_hz"),
            "counters": summary.get("counters"), "resumed_after": len(done)})
        write_json(record_path, records[name])
        (run_dir / PARTIAL).unlink(missing_ok=True)
    return records


#: A policy's finished live episodes while its run is not complete (``live/<name>/partial.json``).
PARTIAL = "partial.json"


def load_partial(path: Path, policy: str, seed: int) -> list[dict]:
    """The episodes kept in ``path`` by an interrupted run of ``policy`` from ``seed`` (none if absent or from
    another policy or seed)."""
    if not path.is_file():
        return []
    kept = json.loads(path.read_text())
    if kept.get("policy") != policy or kept.get("seed") != seed:
        log.warning("%s is from another run (%s, seed %s): starting over", path, kept.get("policy"), kept.get("seed"))
        return []
    return list(kept["episodes"])


def _finished_record(path: Path, policy: str, seed: int, episodes: int) -> dict | None:
    """The ``live/<name>.json`` at ``path`` if it holds ``policy``'s episodes on seeds ``seed``... (all of them)."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    seeds = [e["seed"] for e in record["per_episode"]]
    return record if record.get("policy") == policy and seeds == list(range(seed, seed + episodes)) else None


def _keep_partial(run_dir: Path, policy: str, seed: int, episodes: list[dict]) -> None:
    if episodes:
        from twin.live.recorder import to_plain

        write_json(run_dir / PARTIAL, {"policy": policy, "seed": seed, "episodes": to_plain(episodes)})
        log.warning("the %d finished live episodes are kept in %s", len(episodes), run_dir / PARTIAL)
