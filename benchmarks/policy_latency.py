"""Time per predicted action chunk of the learned policies (untrained weights: the cost does not depend
on them), on this machine's CPU (or --device cuda).

    python benchmarks/policy_latency.py                # state inputs, batch 1 and 64
    python benchmarks/policy_latency.py --threads 2 --repeats 50

Diffusion samples with DDIM in 10 steps, flow matching with Euler in 5, both at the default network
(`policies.learned.config`). Image-input policies are not built yet: their figures are null. Last line:
``{"state_diffusion_ms", "state_flow_ms", "image_diffusion_ms", "image_flow_ms", "batch64_state_flow_ms",
"batch64_state_diffusion_ms", "device", "threads"}`` (median ms per chunk).
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
    for kind in ("diffusion", "flow"):
        model = ChunkModel(PolicyConfig(type=kind)).to(args.device).eval()
        s = model.config.observation.state_dim
        model.set_stats(np.zeros(s), np.ones(s), np.zeros(2), np.ones(2))
        steps = model.config.diffusion.num_inference_steps if kind == "diffusion" else model.config.flow.steps
        for batch in (1, 64):
            state = torch.rand(batch, model.config.chunking.n_obs_steps, s, device=args.device)

            def predict() -> None:
                model.predict(state)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            ms = _median_ms(predict, args.repeats if batch == 1 else max(5, args.repeats // 5))
            key = f"state_{kind}_ms" if batch == 1 else f"batch64_state_{kind}_ms"
            out[key] = round(ms, 2)
            print(f"{kind:9s} ({steps} steps) batch {batch:2d}: {ms:8.2f} ms per chunk "
                  f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")
    out.update(image_diffusion_ms=None, image_flow_ms=None,
               device=args.device if args.device != "cpu" else f"cpu ({platform.processor() or platform.machine()}, "
                                                                 f"{os.cpu_count()} cores)", threads=args.threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
