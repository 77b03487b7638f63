"""Seeded PushT episodes of a policy in one batched twin of W worlds, built once and reused batch after
batch (the unit of work of `realsim evaluate`, locally and on each Ray actor).

Episode ``e`` of an evaluation runs with seed ``seed + e``: its start state is ``PushTEnv.reset``'s for
that seed (the simulated workspace places its block by the same seed in ``realsim deploy``), or a saved
twin state (``start_state``: every episode forks from it, the seed then only drives the policy's noise).
A batch holds up to W episodes; worlds left over in the last batch idle from the start. Each world's
physics, its policy noise (`policies.base.Policy.reset` with the episode seeds) and its renders are its
own, so an episode's result does not depend on the batch size or on the other episodes of its batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from twin.config import TwinConfig
from twin.env import Observation, PushTEnv
from twin.state import TwinState

from ..base import Policy
from .observation_noise import NoisyObservations
from .rules import LiveEpisodeEnd

__all__ = ["BatchEvaluator", "EpisodeTrace", "evaluate_seeds"]


class EpisodeTrace:
    """The twin's states of one episode, step by step (what its video is rendered from): body poses
    [T, 2, 7] and joint positions [T, 7], the first entry the start state."""

    def __init__(self) -> None:
        self.body_poses: list[np.ndarray] = []
        self.joint_pos: list[np.ndarray] = []

    def add(self, body_poses: np.ndarray, joint_pos: np.ndarray) -> None:
        self.body_poses.append(np.asarray(body_poses, dtype=np.float64).copy())
        self.joint_pos.append(np.asarray(joint_pos, dtype=np.float64).copy())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.stack(self.body_poses), np.stack(self.joint_pos)


class BatchEvaluator:
    """One twin of ``worlds`` worlds that runs batches of seeded episodes.

    Args:
        twin_config: the twin (its ``num_worlds`` is replaced by ``worlds``).
        worlds: W, the batch size.
    """

    def __init__(self, twin_config: TwinConfig, worlds: int) -> None:
        if worlds < 1:
            raise ValueError(f"worlds must be >= 1, got {worlds}")
        self.config = replace(twin_config, num_worlds=worlds)
        self.env = PushTEnv(self.config)

    @property
    def worlds(self) -> int:
        return self.env.num_worlds

    def run(self, policy: Policy, seeds: Sequence[int], start_state: TwinState | None = None,
            trace: Sequence[int] = (), on_step: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
            after_step: Callable[[PushTEnv, int], None] | None = None,
            record: Callable[[Observation, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray], None] | None = None,
            live_end: Callable[[int], LiveEpisodeEnd] | None = None,
            ) -> tuple[list[dict[str, Any]], dict[int, EpisodeTrace]]:
        """Run one episode per seed (at most W) until it ends: by the live loop's rules when ``live_end``
        (W -> a fresh `rules.LiveEpisodeEnd`) is given, else at the first success (gym-pusht's rule), or at
        ``max_episode_steps``. A `NoisyObservations` policy's view of the block is drawn once per step, after
        it (and after ``after_step``): the policy acts on it next, and rules ``on_belief`` read its coverage.

        ``trace``: positions in ``seeds`` whose states are kept (``EpisodeTrace``, for videos).
        ``on_step(step, finished, success)`` after every step: which episodes have ended and which of them
        succeeded so far (bool [len(seeds)] each).
        ``after_step(env, step)``: a disturbance (e.g. ``nudge_blocks``); ``record(obs, body_poses, actions,
        info, active)`` sees every step (the observation and body poses [W, 2, 7] the actions came from).
        Returns per episode ``{"seed", "success", "end", "reached", "coverage", "max_coverage", "steps",
        "sum_reward", "max_reward", "pos_error_m", "yaw_error_rad"}`` (figures at the step it ended; ``max_*``
        and ``sum_reward`` over its steps; ``end``: "success", "goal held", "diverged" or "time limit";
        ``reached``: whether any step's coverage reached the success coverage) and the traces.
        """
        K, W, env = len(seeds), self.worlds, self.env
        if not 1 <= K <= W:
            raise ValueError(f"a batch runs 1 to {W} episodes, got {K}")
        padded = np.array(list(seeds) + [seeds[-1]] * (W - K), dtype=np.int64)  # idle worlds copy the last
        policy.reset(seeds=padded)
        # What the policy is given: the observation itself, or the block as `NoisyObservations` lets it see it,
        # drawn once per step and shared with rules that read the block as the policy sees it.
        noisy = policy if isinstance(policy, NoisyObservations) else None
        acting = noisy.policy if noisy is not None else policy
        obs, info = env.reset(seed=padded)
        if start_state is not None:
            obs = env.set_state(start_state)
            info = env.score(obs)
        active = np.arange(W) < K
        final = {k: np.asarray(info[k], dtype=np.float64).copy() for k in ("coverage", "pos_error_m", "yaw_error_rad")}
        max_coverage = final["coverage"].copy()
        sum_reward, max_reward = np.zeros(W), np.zeros(W)
        success = np.zeros(W, dtype=bool)
        ends = np.full(W, "time limit", dtype=object)
        rules = live_end(W) if live_end is not None else None
        steps = np.zeros(W, dtype=np.int64)
        traces = {int(i): EpisodeTrace() for i in trace}
        for i, tr in traces.items():
            tr.add(obs.body_poses[i], obs.joint_pos[i])
        seen = noisy.observe(obs, active) if noisy is not None else obs
        step = 0
        while active.any():
            actions = acting.act(seen, active)
            pre, poses = obs, (env.body_poses() if record is not None else None)
            obs, reward, terminated, truncated, info = env.step(actions)
            if record is not None:
                record(pre, poses, actions, info, active.copy())
            step += 1
            if after_step is not None:
                after_step(env, step)
                obs = env.observe()
            seen = noisy.observe(obs, active) if noisy is not None else obs
            if rules is not None:  # a live episode ends by its rules and is judged by the coverage where it ended
                # the block as the policy sees it (scored only when it differs from the exact one)
                window = env.score(seen)["coverage"] if rules.on_belief and seen is not obs else info["coverage"]
                held, diverged = rules.update(pre, obs, window, active)
                terminated = held | diverged
                ends[active & held] = "goal held"
                ends[active & diverged] = "diverged"
                success[active] = info["coverage"][active] >= self.config.goal.success_coverage
            else:
                success[active] = terminated[active]
                ends[active & terminated] = "success"
            for k in final:
                final[k][active] = info[k][active]
            max_coverage[active] = np.maximum(max_coverage[active], info["coverage"][active])
            sum_reward[active] += reward[active]
            max_reward[active] = np.maximum(max_reward[active], reward[active])
            steps[active] += 1
            for i, tr in traces.items():
                if active[i]:
                    tr.add(obs.body_poses[i], obs.joint_pos[i])
            active &= ~(terminated | truncated)
            if on_step is not None:
                on_step(step, ~active[:K], success[:K])
        reached = max_coverage >= self.config.goal.success_coverage
        results = [{"seed": int(seeds[i]), "success": bool(success[i]), "end": str(ends[i]), "reached": bool(reached[i]),
                    "coverage": float(final["coverage"][i]),
                    "max_coverage": float(max_coverage[i]), "steps": int(steps[i]), "sum_reward": float(sum_reward[i]),
                    "max_reward": float(max_reward[i]), "pos_error_m": float(final["pos_error_m"][i]),
                    "yaw_error_rad": float(final["yaw_error_rad"][i])} for i in range(K)]
        return results, traces


def evaluate_seeds(evaluator: BatchEvaluator, policy: Policy, seeds: Sequence[int], start_state: TwinState | None = None,
                   videos: int = 0, progress: Callable[[int, int], None] | None = None,
                   live_end: Callable[[int], LiveEpisodeEnd] | None = None,
                   ) -> tuple[list[dict[str, Any]], dict[int, EpisodeTrace], float]:
    """All ``seeds`` in batches of the evaluator's W worlds, in order: (per episode results, the traces of
    the first ``videos`` episodes by position, wall seconds). ``progress(finished, succeeded)`` counts
    episodes over the whole evaluation as they end; ``live_end`` as in `BatchEvaluator.run`."""
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    traces: dict[int, EpisodeTrace] = {}
    W = evaluator.worlds
    for start in range(0, len(seeds), W):
        batch = list(seeds[start:start + W])
        keep = [i - start for i in range(start, start + len(batch)) if i < videos]
        done_before = (len(results), sum(r["success"] for r in results))

        def on_step(_: int, finished: np.ndarray, success: np.ndarray) -> None:
            if progress is not None:
                progress(done_before[0] + int(finished.sum()), done_before[1] + int((finished & success).sum()))

        out, tr = evaluator.run(policy, batch, start_state, trace=keep, on_step=on_step, live_end=live_end)
        traces.update({start + i: t for i, t in tr.items()})
        results.extend(out)
    return results, traces, time.perf_counter() - t0
