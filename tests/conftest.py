"""Test-wide settings: quiet Warp, a repository-local kernel cache, one torch thread (2-core CI)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WARP_CACHE_PATH", str(Path(__file__).resolve().parents[1] / ".warp_cache"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # warp is a core dependency, but keep collection working if a helper module is absent
    import warp as wp

    wp.config.quiet = True
    if hasattr(wp, "LOG_WARNING"):
        wp.config.log_level = wp.LOG_WARNING
except ImportError:  # pragma: no cover
    pass
