"""Single-env state throughput of gym-pusht (2-D pymunk PushT), the reference for the twin's rollout
benchmark. Run with an interpreter that has gym-pusht installed (see benchmarks/pusht_rollout.py).
Prints one JSON line: {"steps_per_s": ...}."""

import json
import time

import gymnasium as gym
import gym_pusht  # noqa: F401  (registers the env)
import numpy as np


def main(steps: int = 3000) -> None:
    env = gym.make("gym_pusht/PushT-v0", obs_type="state")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0, 512, size=(steps, 2)).astype(np.float32)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    print(json.dumps({"steps_per_s": steps / (time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
