"""The denoising network as TorchScript traces for sampling: a batch-1 prediction on a CPU is a few
hundred small operations per network call, and a trace runs them without Python's dispatch (about a
fifth less time per call on the 2-core CPU machine, `benchmarks/policy_latency.py`)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["TracedDenoiser"]


class TracedDenoiser:
    """Calls ``net(x [B, T, A], t [B], cond [B, C])`` through a trace per input signature (shapes, time
    dtype, device), made on first use. The traces share ``net``'s parameters, so weights trained or
    loaded later are the ones used. With gradients enabled it calls ``net`` itself."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self._traces: dict[tuple, nn.Module] = {}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or self.net.training:
            return self.net(x, t, cond)
        key = (tuple(x.shape), tuple(t.shape), t.dtype, tuple(cond.shape), x.device)
        traced = self._traces.get(key)
        if traced is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks fixed per signature
                # TorchScript is deprecated in newer torch (the pinned 2.13 has it; torch.export's module
                # runs no faster here): where tracing is gone, the network runs as it is
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    traced = torch.jit.trace(self.net, (x, t, cond), check_trace=False)
                except (AttributeError, RuntimeError, NotImplementedError):
                    traced = self.net
            self._traces[key] = traced
        return traced(x, t, cond)
