"""The policy process: runs a LeRobot checkpoint in LeRobot's own Python and answers the twin over a socket.

Run by `client.LeRobotPolicy` with LeRobot's interpreter (``.venv-lerobot/bin/python``), never imported by
realsim's environment; it imports only the standard library, numpy, torch, lerobot and its sibling
`_wire` (standard library and numpy)::

    python server.py --checkpoint DIR/pretrained_model --socket /tmp/x/policy.sock --device cpu --seed 0

It loads the policy as ``lerobot-eval`` does (config, weights, the saved pre/post-processors), binds a
Unix socket, prints one line ``REALSIM_LEROBOT_READY {json}`` on stdout (the policy's features), serves
one connection and exits when it closes, when asked to, or when its stdin closes (the parent died).
Loading errors go to stderr and exit with status 3.

Requests (`_wire` frames, ``op`` in the header):

- ``hello`` -> ``ok`` with ``info`` (type, input features and shapes, action shape, n_obs_steps, ...);
- ``reset`` ``{worlds: N, seed: int}`` -> ``ok``: clears the policy's observation and action queues and
  seeds torch's generator. LeRobot keeps ONE queue for the whole batch (``select_action`` works on the
  batch), so a reset always restarts all N worlds and the same seed and observations give the same actions;
- ``act`` with one array per input feature, leading dimension N (state features float32 [N, D], images
  uint8 [N, H, W, 3] RGB) -> ``ok`` with ``action`` float64 [N, A];
- ``close`` -> ``ok``, then the process exits.

A request it cannot serve gets ``{op: "error", message}``; a malformed frame also ends the connection.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

try:
    from . import _wire
except ImportError:  # run as a script: the sibling module is on sys.path[0]
    import _wire  # type: ignore[no-redef]

READY = "REALSIM_LEROBOT_READY"
MAX_WORLDS = 1024
LOAD_FAILED = 3


class RequestError(ValueError):
    """A request that is well-formed on the wire but cannot be served (the message says why)."""


class PolicyServer:
    """A loaded LeRobot policy and its processors, serving requests (one connection at a time).

    Args:
        checkpoint: a ``pretrained_model`` folder written by ``lerobot-train``.
        device: torch device ("cpu", "cuda", "cuda:0").
    """

    def __init__(self, checkpoint: str, device: str = "cpu") -> None:
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.torch = torch
        cfg = PreTrainedConfig.from_pretrained(checkpoint)
        cfg.device = device
        cfg.pretrained_path = checkpoint
        self.policy = get_policy_class(cfg.type).from_pretrained(checkpoint, config=cfg)
        self.policy.eval()
        self.pre, self.post = make_pre_post_processors(
            cfg, pretrained_path=checkpoint, preprocessor_overrides={"device_processor": {"device": device}})
        self.config = cfg
        self.features = {k: tuple(int(d) for d in f.shape) for k, f in cfg.input_features.items()}
        self.visual = {k for k, f in cfg.input_features.items() if getattr(f.type, "value", str(f.type)) == "VISUAL"}
        (self.action_key, action), = cfg.output_features.items()
        self.action_shape = tuple(int(d) for d in action.shape)
        self.worlds = 0  # N of the episode in progress (0: no reset yet)
        self.task = ""

    def info(self) -> dict[str, Any]:
        import lerobot

        return {"type": self.config.type, "device": str(self.config.device),
                "input_features": {k: list(v) for k, v in self.features.items()}, "visual": sorted(self.visual),
                "action_shape": list(self.action_shape), "n_obs_steps": int(getattr(self.config, "n_obs_steps", 1)),
                "n_action_steps": int(getattr(self.config, "n_action_steps", 1)),
                "lerobot_version": getattr(lerobot, "__version__", "?"), "protocol": _wire.PROTOCOL_VERSION}

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """One request -> (reply header, reply arrays); raises `RequestError` for one it cannot serve."""
        op = header["op"]
        if op == "hello":
            return {"op": "ok", "info": self.info()}, {}
        if op == "reset":
            self._reset(header, arrays)
            return {"op": "ok"}, {}
        if op == "act":
            return {"op": "ok"}, {"action": self._act(header, arrays)}
        raise RequestError(f"unknown request {op!r}"[:200])

    def _reset(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        worlds, seed, task = header.get("worlds"), header.get("seed"), header.get("task", "")
        if arrays or not _is_int(worlds) or not 1 <= worlds <= MAX_WORLDS:
            raise RequestError(f"reset needs worlds in [1, {MAX_WORLDS}] and no arrays, got {worlds!r}"[:200])
        if not _is_int(seed) or not 0 <= seed < 2 ** 63:
            raise RequestError(f"reset needs a seed in [0, 2**63), got {seed!r}"[:200])
        if not isinstance(task, str) or len(task) > 1000:
            raise RequestError("the task must be a string of at most 1000 characters")
        self.policy.reset()
        self.torch.manual_seed(seed)
        self.worlds, self.task = worlds, task

    def _act(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
        torch, n = self.torch, self.worlds
        if n == 0:
            raise RequestError("act before reset")
        if set(header) != {"op"} or set(arrays) != set(self.features):
            raise RequestError(f"act needs exactly the arrays {sorted(self.features)}, got {sorted(arrays)}"[:400])
        batch: dict[str, Any] = {}
        for key, shape in self.features.items():
            a = arrays[key]
            if key in self.visual:
                c, h, w = shape
                if a.dtype != np.uint8 or a.shape != (n, h, w, c):
                    raise RequestError(f"{key} must be uint8 {(n, h, w, c)}, got {a.dtype} {a.shape}")
                batch[key] = torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().float() / 255.0
            else:
                if a.dtype != np.float32 or a.shape != (n, *shape):
                    raise RequestError(f"{key} must be float32 {(n, *shape)}, got {a.dtype} {a.shape}")
                batch[key] = torch.from_numpy(a)
        if self.task:
            batch["task"] = [self.task] * n
        with torch.inference_mode():
            action = self.post(self.policy.select_action(self.pre(batch)))
        action = action.detach().to("cpu", torch.float64).numpy().reshape(n, *self.action_shape)
        if not np.isfinite(action).all():
            raise RequestError("the policy produced non-finite actions")
        return action


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def serve(server: PolicyServer, conn: socket.socket, max_frame_bytes: int = _wire.MAX_FRAME_BYTES) -> None:
    """Answer requests on ``conn`` until it closes, a ``close`` request, or a malformed frame."""
    while True:
        try:
            header, arrays = _wire.recv_message(conn, max_frame_bytes)
        except _wire.ConnectionClosed:
            return
        except _wire.WireError as exc:  # the stream cannot be trusted any more: say why and stop
            _reply(conn, {"op": "error", "message": f"malformed frame: {exc}"[:2000]}, {}, max_frame_bytes)
            return
        if header["op"] == "close":
            _reply(conn, {"op": "ok"}, {}, max_frame_bytes)
            return
        try:
            reply, out = server.handle(header, arrays)
        except RequestError as exc:
            reply, out = {"op": "error", "message": str(exc)}, {}
        except Exception as exc:  # noqa: BLE001 - the policy failed: report it to the twin, keep serving
            reply, out = {"op": "error", "message": f"{type(exc).__name__}: {exc}"[:2000]}, {}
        if not _reply(conn, reply, out, max_frame_bytes):
            return


def _reply(conn: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray], max_frame_bytes: int) -> bool:
    """Send a reply; False when the twin is gone."""
    try:
        _wire.send_message(conn, header, arrays, max_frame_bytes)
    except OSError:
        return False
    return True


def _remove_socket(path: str) -> None:
    """Remove the socket file and its private folder (when empty): a parent that was killed cannot."""
    for remove in (os.unlink, os.rmdir):
        try:
            remove(path)
        except OSError:
            pass
        path = os.path.dirname(path)


def _exit_when_parent_dies(socket_path: str) -> None:
    """The parent holds our stdin open: EOF means it exited (or crashed), so do we."""
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            _remove_socket(socket_path)
            os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="realsim's LeRobot policy process (see the module docstring)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--socket", required=True, help="Unix socket path to bind (its folder must exist, private)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--accept-timeout-s", type=float, default=120.0)
    args = p.parse_args(argv)
    _exit_when_parent_dies(args.socket)
    try:
        import torch

        torch.set_num_threads(max(1, args.threads))
        server = PolicyServer(str(Path(args.checkpoint).resolve()), args.device)
    except Exception as exc:  # noqa: BLE001 - any loading failure is reported the same way
        print(f"cannot load the LeRobot policy {args.checkpoint}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return LOAD_FAILED
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(args.socket)
        os.chmod(args.socket, 0o600)
        listener.listen(1)
        listener.settimeout(args.accept_timeout_s)
        print(f"{READY} {json.dumps(server.info())}", flush=True)
        conn, _ = listener.accept()
    except OSError as exc:
        print(f"cannot serve on {args.socket}: {exc}", file=sys.stderr)
        _remove_socket(args.socket)
        return 1
    finally:
        listener.close()
    with conn:
        conn.settimeout(None)  # between episodes the twin may pause for long; its exit closes the socket
        serve(server, conn)
    _remove_socket(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
