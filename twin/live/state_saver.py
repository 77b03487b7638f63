"""Saving the live twin's state for what-if rollouts (``realsim deploy --save-state DIR``, then
``realsim evaluate --from-state DIR/<file>.npz``): at every episode's start, once the block is localised
and the correction has settled, as ``episode_<k>.npz``, and whenever the process receives SIGUSR1
(``kill -USR1 <pid>``) as ``request_<k>_step_<n>.npz`` at the next control step."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

log = logging.getLogger("twin.live")

__all__ = ["StateSaver"]


class StateSaver:
    """Writes `twin.state.TwinState` files of world 0 of a live twin into ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._requested = threading.Event()
        self.saved: list[Path] = []
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, lambda *_: self.request())

    def request(self) -> None:
        """Save the state at the next control step (what SIGUSR1 does)."""
        self._requested.set()

    def save(self, twin, name: str, meta: dict) -> Path:  # noqa: ANN001 - twin.env.PushTEnv
        from ..state import save_twin_state

        path = save_twin_state(self.directory / f"{name}.npz", twin.get_state(0, meta))
        self.saved.append(path)
        log.info("twin state saved to %s", path)
        return path

    def episode_start(self, twin, episode: int, seed: int) -> None:  # noqa: ANN001
        self.save(twin, f"episode_{episode:03d}", {"source": "deploy", "episode": episode, "seed": seed, "step": 0})

    def after_step(self, twin, episode: int, seed: int, step: int) -> None:  # noqa: ANN001
        if self._requested.is_set():
            self._requested.clear()
            self.save(twin, f"request_{episode:03d}_step_{step:04d}",
                      {"source": "deploy", "episode": episode, "seed": seed, "step": step})
