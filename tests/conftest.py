"""Test-wide settings: quiet Warp, a repository-local kernel cache, one torch thread (2-core CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WARP_CACHE_PATH", str(Path(__file__).resolve().parents[1] / ".warp_cache"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # warp is a core dependency, but keep collection working if a helper module is absent
    import warp as wp

    wp.config.quiet = True
    if hasattr(wp, "LOG_WARNING"):
        wp.config.log_level = wp.LOG_WARNING
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (2-core machines; also what the jobs set), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
