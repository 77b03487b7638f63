"""Time per predicted action chunk of the learned policies (untrained weights: the cost does not depend
on them), on this machine's CPU (or --device cuda).

    python benchmarks/policy_latency.py                # state inputs, batch 1 and 64
    python benchmarks/policy_latency.py --threads 2 --repeats 50

Diffusion samples with DDIM in 10 steps, flow matching with Euler in 5, both at the default network
(`policies.learned.config`), timed through ``LearnedPolicy.act`` at an episode's start (what deploy and
evaluation run: observation window, normalisation, traced sampling); ``state_*_eager_ms`` is the network
called directly for comparison. An image policy's chunk includes rendering its two observation steps of
the 96x96 overhead view from the twin's state (`policies.learned.images`) and encoding them. Last line:
``{"state_diffusion_ms", "state_flow_ms", "image_diffusion_ms", "image_flow_ms", "batch64_state_flow_ms",
"batch64_state_diffusion_ms", "state_diffusion_eager_ms", "state_flow_eager_ms", "device", "threads"}`` (median ms per chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(sorted(times)[len(times) // 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2: this machine's cores)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    import numpy as np
    import torch

    from policies.learned.config import PolicyConfig
    from policies.learned.model import ChunkModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out: dict[str, object] = {}
    from launch._common import quiet_warp
    from policies.learned.policy import LearnedPolicy
    from twin.config import TwinConfig
    from twin.env import PushTEnv

    quiet_warp()
    env64 = PushTEnv(TwinConfig(num_worlds=64))
    obs64, _ = env64.reset(seed=list(range(64)))
    for kind in ("diffusion", "flow"):
        model = ChunkModel(PolicyConfig(type=kind)).to(args.device).eval()
        s = model.config.observation.state_dim
        model.set_stats(np.zeros(s), np.ones(s), np.zeros(2), np.ones(2))
        steps = model.config.diffusion.num_inference_steps if kind == "diffusion" else model.config.flow.steps
        policy = LearnedPolicy(model, device=args.device)
        for batch in (1, 64):
            obs = obs64.select(slice(0, batch))

            def chunk() -> None:
                policy.reset()
                policy.act(obs)  # a new episode in every world: one batched chunk prediction
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            ms = _median_ms(chunk, args.repeats if batch == 1 else max(5, args.repeats // 5))
            key = f"state_{kind}_ms" if batch == 1 else f"batch64_state_{kind}_ms"
            out[key] = round(ms, 2)
            print(f"{kind:9s} ({steps} steps) batch {batch:2d}: {ms:8.2f} ms per chunk "
                  f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")
        state = torch.rand(1, model.config.chunking.n_obs_steps, s, device=args.device)
        with torch.no_grad():  # the network called directly, without the policy's traced sampling
            eager = _median_ms(lambda: model.predict(state), args.repeats)  # noqa: B023
        out[f"state_{kind}_eager_ms"] = round(eager, 2)
        print(f"{kind:9s} ({steps} steps) batch  1, eager network: {eager:8.2f} ms per chunk")
    from policies.learned.config import OVERHEAD_VIEW, ObservationConfig
    from policies.learned.features import StateFeature

    obs = obs64.select(slice(0, 1))
    for kind in ("diffusion", "flow"):
        cfg = PolicyConfig(type=kind, observation=ObservationConfig(
            state=(StateFeature("observation.state", ("pusher_x", "pusher_y")),), images=(OVERHEAD_VIEW,)))
        model = ChunkModel(cfg).to(args.device).eval()
        model.set_stats(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2))
        policy = LearnedPolicy(model, device=args.device, twin=TwinConfig())

        def chunk() -> None:
            policy.reset()
            policy.act(obs)  # a new episode: renders the window, encodes it, samples a chunk

        ms = _median_ms(chunk, max(5, args.repeats // 3))
        out[f"image_{kind}_ms"] = round(ms, 2)
        print(f"{kind:9s} image (96x96 overhead, render included) batch  1: {ms:8.2f} ms per chunk")
    out.update(device=args.device if args.device != "cpu" else f"cpu ({platform.processor() or platform.machine()}, "
                                                                 f"{os.cpu_count()} cores)", threads=args.threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
