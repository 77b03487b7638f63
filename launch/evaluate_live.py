"""The live half of `realsim evaluate --compare-live`: each policy runs the same seeded episodes through
the whole live stack (cameras -> correction -> twin -> bridge -> robot) on a freshly started simulated
workspace (the same seed, so the same domain gap for every policy), or on hardware with a deploy config
(``--live-config``; the operator resets the scene). Each policy's episodes are written to
``live/<name>.json`` as soon as they are done (`policies.evaluation.comparison`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from policies.evaluation.comparison import live_record
from policies.evaluation.report import write_json
from policies.evaluation.specs import PolicySpec, build_policy
from twin.config import TwinConfig

from .config import load_config
from .deploy import DeployConfig, start_world, stop_process

__all__ = ["run_live", "live_config"]

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
    """``episodes`` live episodes (seeds ``seed``...) per policy; returns name -> the ``live/<name>.json`` record."""
    from sim_workspace.clients import clients_for
    from twin.live import LiveLinkError, LiveRunner

    live = replace(cfg.live, episodes=episodes, seed=seed, twin=replace(cfg.live.twin, num_worlds=1))
    cfg = replace(cfg, live=live)
    records = {}
    for spec, name in zip(specs, names):
        log.info("live episodes of %s (%d, seeds %d-%d)", name, episodes, seed, seed + episodes - 1)
        run_dir = out / "live" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        world, run_cfg, runner = None, cfg, None
        try:
            if cfg.start_world:
                world, run_cfg = start_world(cfg, run_dir)
            control, truth = clients_for(run_cfg.live.links.control_endpoint, run_cfg.live.links.truth_endpoint)
            policy = build_policy(spec, run_cfg.live.twin, run_cfg.live.twin.device, policy_seed)
            runner = LiveRunner(run_cfg.live, policy, device=run_cfg.live.twin.device, world=control, truth=truth)
            try:
                summary = runner.run()
            except LiveLinkError as exc:
                log.error("%s: live run stopped: %s", name, exc)
                summary = runner.summary() | {"aborted": str(exc)}
        finally:
            if runner is not None:
                runner.close()
            stop_process(world)
        if not summary["episodes"]:
            continue
        records[name] = live_record(spec.text, summary["episodes"], {
            "twin_vs_truth_aligned": summary.get("twin_vs_truth_aligned"), "correction_hz": summary.get("correction_hz"),
            "aborted": summary.get("aborted"), "counters": summary.get("counters")})
        write_json(out / "live" / f"{name}.json", records[name])
    return records
