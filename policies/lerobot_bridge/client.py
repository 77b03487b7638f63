"""`LeRobotPolicy`: a checkpoint trained by ``lerobot-train`` behind realsim's `policies.base.Policy`,
run by a policy process (`server`) in LeRobot's own Python environment.

    policy = LeRobotPolicy("outputs/train/checkpoints/last/pretrained_model", twin_config)
    policy.reset(seeds=np.arange(4))
    targets = policy.act(obs)        # [N, 2] pusher targets (x, y) [m], world frame
    policy.close()

The interpreter is ``$REALSIM_LEROBOT_PYTHON`` or the repository's ``.venv-lerobot/bin/python`` (``make
lerobot-env``). Observations are shaped as the training dataset recorded them (`_observations`) and sent
over a private Unix socket (`_wire`); the process ends on ``close``, when this object is collected, at
interpreter exit, and on its own when this process dies (its stdin and socket close).

Per-world state: LeRobot's ``select_action`` keeps one observation and action queue for the whole batch,
so all N worlds share one episode clock. A ``reset`` (of all worlds or of a subset: the live loop resets
world 0 of 1) restarts every world's queue, which is right where all worlds start together (an evaluation
batch, the live loop). Sampling noise is seeded from ``seed`` and the reset's episode seeds together:
the same seeds and observations give the same actions, but an episode's actions depend on the batch it
runs in (unlike realsim's own `LearnedPolicy`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..base import Policy
from . import _wire
from ._observations import ObservationEncoder, dataset_root

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation

__all__ = ["LeRobotPolicy", "LeRobotPolicyError", "lerobot_python", "read_checkpoint"]

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).resolve().with_name("server.py")
READY = "REALSIM_LEROBOT_READY"


class LeRobotPolicyError(RuntimeError):
    """The LeRobot environment, the checkpoint or the policy process cannot serve (the message says why)."""


def lerobot_python() -> Path:
    """LeRobot's interpreter: ``$REALSIM_LEROBOT_PYTHON``, else ``<repo>/.venv-lerobot/bin/python``."""
    return Path(os.environ.get("REALSIM_LEROBOT_PYTHON") or REPO / ".venv-lerobot" / "bin" / "python")


def read_checkpoint(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a LeRobot ``pretrained_model`` folder, checked for what the bridge needs
    (a policy type, input features with shapes, one action output, the weights and processor files).
    Raises `LeRobotPolicyError` without starting anything."""
    d = Path(directory)
    if not d.is_dir():
        raise LeRobotPolicyError(f"{d} is not a directory (a LeRobot pretrained_model folder is expected)")
    try:
        cfg = json.loads((d / "config.json").read_text())
    except OSError:
        raise LeRobotPolicyError(f"{d} holds no config.json: not a LeRobot pretrained_model folder") from None
    except ValueError as exc:
        raise LeRobotPolicyError(f"{d / 'config.json'} is not JSON: {exc}") from None
    try:
        ok = (isinstance(cfg, dict) and isinstance(cfg["type"], str) and cfg["input_features"]
              and all(isinstance(f["shape"], list) and all(isinstance(s, int) and s > 0 for s in f["shape"])
                      for f in cfg["input_features"].values())
              and len(cfg["output_features"]) == 1 and list(cfg["output_features"].values())[0]["shape"] == [2])
    except (KeyError, TypeError, AttributeError, IndexError):
        ok = False
    if not ok:
        raise LeRobotPolicyError(f"{d / 'config.json'} is not a LeRobot policy config with input features and "
                                 f"one action output of shape [2]")
    missing = [f for f in ("model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json")
               if not (d / f).is_file()]
    if missing:
        raise LeRobotPolicyError(f"{d} lacks {', '.join(missing)}: not a complete LeRobot checkpoint")
    return cfg


class LeRobotPolicy(Policy):
    """A LeRobot checkpoint acting on the twin (see the module docstring).

    Args:
        checkpoint: the ``pretrained_model`` folder (config.json, model.safetensors, processors).
        twin: the twin whose observations it acts on (renders image inputs of it; None: state inputs only).
        device: torch device of the policy and the renders ("cpu", "cuda").
        seed: seed of the policy's sampling noise (combined with each reset's episode seeds).
        python: LeRobot's interpreter (default `lerobot_python`).
        task: the task string given to language-conditioned policies ("" : none).
        startup_timeout_s: time for the process to load the policy [s].
        request_timeout_s: time for one reply (an action chunk on a CPU can take a while) [s].

    Raises `LeRobotPolicyError` (the environment or the checkpoint is missing or broken, the process
    fails to start) or ``ValueError`` (the checkpoint's inputs are not a realsim dataset's) before any
    episode runs.
    """

    def __init__(self, checkpoint: str | Path, twin: "TwinConfig | None" = None, device: str = "cpu", seed: int = 0,
                 python: str | Path | None = None, task: str = "", startup_timeout_s: float = 600.0,
                 request_timeout_s: float = 600.0) -> None:
        self.checkpoint = Path(checkpoint).resolve()
        cfg = read_checkpoint(self.checkpoint)
        self.features = {k: tuple(f["shape"]) for k, f in cfg["input_features"].items()}
        self.python = Path(python) if python is not None else lerobot_python()
        if not self.python.is_file():
            raise LeRobotPolicyError(f"no LeRobot Python at {self.python} (run `make lerobot-env`, or set "
                                     f"REALSIM_LEROBOT_PYTHON)")
        self.encoder = ObservationEncoder(self.features, twin, device, dataset_root(self.checkpoint))
        self.seed, self.task, self.request_timeout_s = int(seed), str(task), float(request_timeout_s)
        self._worlds = 0  # N of the episode the process runs (0: none yet)
        self._pending_seed: int | None = self._episode_seed(None)
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._h = _Handles(tempfile.mkdtemp(prefix="realsim-lerobot-"))
        self._finalizer = weakref.finalize(self, _shutdown, self._h)  # at close, collection or exit
        self.info = self._start(device, startup_timeout_s)

    # ------------------------------------------------------------------ process
    def _start(self, device: str, timeout_s: float) -> dict[str, Any]:
        h = self._h
        path = os.path.join(h.tmp, "policy.sock")
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
        cmd = [str(self.python), "-E", "-s", str(SERVER), "--checkpoint", str(self.checkpoint), "--socket", path,
               "--device", device]
        try:
            h.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, start_new_session=True)
        except OSError as exc:
            self.close()
            raise LeRobotPolicyError(f"cannot start LeRobot's Python {self.python}: {exc}") from exc
        ready: queue.Queue[str] = queue.Queue(maxsize=1)
        threading.Thread(target=_read_lines, args=(h.proc.stdout, self._stderr, ready), daemon=True).start()
        threading.Thread(target=_read_lines, args=(h.proc.stderr, self._stderr, None), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ready.get(timeout=0.2)
                break
            except queue.Empty:
                pass
            if h.proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)  # let the readers take the last lines
                why = (f"exited with status {h.proc.returncode}" if h.proc.poll() is not None
                       else f"did not load within {timeout_s:.0f} s")
                self.close()
                raise LeRobotPolicyError(f"the LeRobot policy process for {self.checkpoint} {why}:\n{self._log_tail()}")
        try:
            h.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            h.sock.settimeout(30.0)
            h.sock.connect(path)
            info = self._request({"op": "hello"})[0].get("info")
        except (OSError, LeRobotPolicyError) as exc:
            self.close()
            raise LeRobotPolicyError(f"the LeRobot policy process does not answer: {exc}\n{self._log_tail()}") from exc
        info = info if isinstance(info, dict) else {}
        try:
            served = {k: tuple(v) for k, v in info.get("input_features", {}).items()}
        except (AttributeError, TypeError):
            served = {}
        if served != self.features or info.get("action_shape") != [2]:
            self.close()
            raise LeRobotPolicyError(f"the policy process serves inputs {served} and action {info.get('action_shape')}"
                                     f", config.json says {self.features} and [2]")
        log.info("LeRobot %s policy %s on %s (LeRobot %s)", info.get("type"), self.checkpoint, device,
                 info.get("lerobot_version"))
        return info

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    def _request(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                 timeout_s: float | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        sock = self._h.sock
        if sock is None:
            raise LeRobotPolicyError("the LeRobot policy process is closed")
        try:
            sock.settimeout(timeout_s or self.request_timeout_s)
            _wire.send_message(sock, header, arrays)
            reply, out = _wire.recv_message(sock)
        except (OSError, _wire.WireError) as exc:  # TimeoutError is an OSError
            self.close()
            raise LeRobotPolicyError(f"the LeRobot policy process failed on {header['op']!r}: {exc}\n"
                                     f"{self._log_tail()}") from exc
        if reply["op"] == "error":
            raise LeRobotPolicyError(f"the LeRobot policy refused {header['op']!r}: {str(reply.get('message'))[:2000]}")
        if reply["op"] != "ok":
            self.close()
            raise LeRobotPolicyError(f"the LeRobot policy process answered {reply['op']!r}"[:200])
        return reply, out

    def close(self) -> None:
        """Stop the policy process (idempotent)."""
        self._finalizer()

    def __enter__(self) -> "LeRobotPolicy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ Policy
    def _episode_seed(self, seeds: np.ndarray | None) -> int:
        entropy = [self.seed] + ([] if seeds is None else [int(s) for s in np.asarray(seeds).reshape(-1)])
        entropy = [e % 2 ** 64 for e in entropy]  # SeedSequence takes non-negative integers
        return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:
        """Restart ALL worlds' queues, whatever ``worlds`` names (LeRobot keeps one queue for the batch),
        with noise seeded from ``seed`` and ``seeds``; takes effect at the next ``act``."""
        self._pending_seed = self._episode_seed(seeds)

    def set_twin_config(self, config: "TwinConfig") -> None:
        self.encoder.set_twin_config(config)

    def act(self, obs: "Observation", active: np.ndarray | None = None) -> np.ndarray:
        n = obs.pusher_xy.shape[0]
        active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).reshape(n)
        if self._pending_seed is not None or n != self._worlds:
            if self._pending_seed is None:
                log.warning("the number of worlds changed from %d to %d: the LeRobot policy restarts", self._worlds, n)
            seed = self._pending_seed if self._pending_seed is not None else self._episode_seed(None)
            self._request({"op": "reset", "worlds": int(n), "seed": seed, "task": self.task})
            self._worlds, self._pending_seed = n, None
        try:
            arrays = self.encoder.encode(obs, active)
        except ValueError as exc:
            raise LeRobotPolicyError(str(exc)) from exc
        _, out = self._request({"op": "act"}, arrays)
        action = out.get("action")
        if set(out) != {"action"} or action.dtype != np.float64 or action.shape != (n, 2):
            self.close()
            raise LeRobotPolicyError(f"the LeRobot policy process sent {[(k, v.dtype.name, v.shape) for k, v in out.items()]}"
                                     f", not one float64 action [{n}, 2]")
        hold = np.asarray(obs.pusher_xy, dtype=np.float64)
        return np.where(active[:, None], action, hold)


def _read_lines(stream, sink: collections.deque, ready: queue.Queue | None) -> None:  # noqa: ANN001 - a binary pipe
    """Drain a pipe of the process: the ready line into ``ready``, every other line into ``sink`` (bounded)."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if ready is not None and line.startswith(READY):
            try:
                ready.put_nowait(line)
            except queue.Full:
                pass
        else:
            sink.append(line)


@dataclass
class _Handles:
    """What a `LeRobotPolicy` must release (apart from it, so that its finalizer does not keep it alive)."""

    tmp: str  #: private folder of the socket
    proc: subprocess.Popen | None = None
    sock: socket.socket | None = None


def _shutdown(h: _Handles) -> None:
    """Ask the process to stop, close its stdin (it exits on EOF too), wait, kill if it does not exit."""
    sock, proc, h.sock = h.sock, h.proc, None
    if sock is not None:
        try:
            sock.settimeout(5.0)
            _wire.send_message(sock, {"op": "close"})
            _wire.recv_message(sock)
        except (OSError, _wire.WireError):
            pass
        sock.close()
    if proc is not None:
        if proc.stdin is not None:
            try:
                proc.stdin.close()  # the process exits on its stdin's EOF too
            except OSError:
                pass
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10.0)
    shutil.rmtree(h.tmp, ignore_errors=True)
