"""LeRobot checkpoints in the twin (`policies.lerobot_bridge`): the socket's wire format and its checks
(fast), and, with LeRobot's environment (``make lerobot-env``, slow), a diffusion policy trained by
``lerobot-train`` on a dataset from ``realsim collect`` acting on twin worlds, in ``realsim evaluate``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policies.lerobot_bridge._wire import ConnectionClosed, WireError, decode, encode, recv_message, send_message

REPO = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = os.environ.get("REALSIM_LEROBOT_PYTHON") or str(REPO / ".venv-lerobot" / "bin" / "python")
OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled")


def slow_lerobot(test):  # noqa: ANN001, ANN201
    """Slow, and skipped without LeRobot's Python (as tests/test_lerobot_both_ways.py)."""
    for mark in (pytest.mark.slow, pytest.mark.timeout(1800),
                 pytest.mark.skipif(not Path(LEROBOT_PYTHON).exists(), reason="no Python environment with lerobot")):
        test = mark(test)
    return test


# ---------------------------------------------------------------------------------------------- wire (fast)
def _payload(frame: bytes) -> bytes:
    (n,) = struct.unpack(">I", frame[:4])
    assert n == len(frame) - 4
    return frame[4:]


def _frame(header: dict, body: bytes = b"") -> bytes:
    """A hand-made payload (no length prefix), bypassing the encoder's checks."""
    head = json.dumps(header).encode()
    return struct.pack(">I", len(head)) + head + body


def test_wire_round_trip_keeps_dtypes_shapes_values_and_header():
    rng = np.random.default_rng(0)
    arrays = {"observation.state": rng.normal(size=(3, 9)).astype(np.float32), "action": rng.normal(size=(3, 2)),
              "observation.images.top": rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8),
              "empty": np.zeros((0, 2), np.float32)}
    header, out = decode(_payload(encode({"op": "act", "worlds": 3, "seed": 7}, arrays)))
    assert header == {"op": "act", "worlds": 3, "seed": 7}
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == a.dtype and out[k].shape == a.shape and np.array_equal(out[k], a)
        assert out[k].flags.writeable  # a copy, not a view of the frame
    a, b = socket.socketpair()
    with a, b:
        send_message(a, {"op": "ok"}, {"action": arrays["action"]})
        header, out = recv_message(b)
        assert header == {"op": "ok"} and np.array_equal(out["action"], arrays["action"])


@pytest.mark.parametrize("arrays", [{"x": np.zeros(3, np.int64)}, {"x": np.array(["a"])}, {"x": np.zeros((1,) * 6)},
                                    {"x": np.array([1.0, np.nan])}, {"x": np.array([np.inf], np.float32)}, {"": np.zeros(1)}])
def test_wire_encoder_refuses_what_the_protocol_does_not_carry(arrays):
    with pytest.raises(WireError):
        encode({"op": "act"}, arrays)


def test_wire_encoder_refuses_bad_headers_and_oversized_frames():
    for header in ({}, {"op": 1}, {"op": "act", "arrays": []}, {"op": "act", "x": float("nan")}, {"op": "act", "x": object()}):
        with pytest.raises(WireError):
            encode(header)
    with pytest.raises(WireError, match="exceeds"):
        encode({"op": "act"}, {"x": np.zeros(1000)}, max_frame_bytes=4000)


HOSTILE = {
    "dtype not allowed": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "int64", "shape": [1]}]}, bytes(8)),
    "object dtype": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "object", "shape": [1]}]}, bytes(8)),
    "too few bytes": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float64", "shape": [2, 2]}]}, bytes(24)),
    "bytes left over": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float64", "shape": [2]}]}, bytes(24)),
    "negative size": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [-1]}]}),
    "bool size": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [True]}]}, bytes(1)),
    "float size": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [1.0]}]}, bytes(1)),
    "huge shape": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float64", "shape": [2 ** 40, 2 ** 40]}]}),
    "huge product": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float64", "shape": [2 ** 20] * 3}]}),
    "too many dims": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [1] * 9}]}, bytes(1)),
    "duplicate name": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [1]}] * 2}, bytes(2)),
    "extra key": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "uint8", "shape": [1], "offset": 0}]}, bytes(1)),
    "arrays not a list": _frame({"op": "act", "arrays": {"x": 1}}),
    "nan value": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float64", "shape": [2]}]},
                        np.array([0.0, np.nan]).tobytes()),
    "inf value": _frame({"op": "act", "arrays": [{"name": "x", "dtype": "float32", "shape": [1]}]},
                        np.array([np.inf], np.float32).tobytes()),
    "no op": _frame({"arrays": []}),
    "op not a string": _frame({"op": 3}),
    "not an object": _frame([1, 2]),  # type: ignore[arg-type]
    "NaN in the header": struct.pack(">I", 22) + b'{"op": "act", "x": NaN}',
    "not JSON": struct.pack(">I", 3) + b"\xff\xfe{",
    "header past the end": struct.pack(">I", 1000) + b'{"op": "act"}',
    "too short": b"\x00\x01",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_wire_decoder_rejects_hostile_frames(name):
    with pytest.raises(WireError):
        decode(HOSTILE[name])


def test_wire_refuses_an_oversized_frame_before_reading_it_and_notices_a_closed_peer():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", 2 ** 31))  # announces 2 GiB, sends nothing more
        with pytest.raises(WireError, match="limit"):
            recv_message(b, max_frame_bytes=1 << 20)
        with pytest.raises(WireError, match="exceeds"):
            decode(bytes(2000), max_frame_bytes=1000)
    a, b = socket.socketpair()
    with b:
        a.sendall(encode({"op": "ok"})[:7])  # a frame cut short
        a.close()
        with pytest.raises(ConnectionClosed, match="mid-frame"):
            recv_message(b)


# ------------------------------------------------------------------------------ server checks (fast, no lerobot)
class _FakePolicy:
    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, batch):  # noqa: ANN001, ANN201
        import torch

        n = batch["observation.state"].shape[0]
        return torch.stack([batch["observation.state"][:, 0], batch["observation.images.top"].mean(dim=(1, 2, 3))], 1).reshape(n, 2)


def _fake_server():  # noqa: ANN202
    import torch

    from policies.lerobot_bridge.server import PolicyServer

    s = object.__new__(PolicyServer)  # the request handling, around a stand-in for LeRobot's policy
    s.torch, s.policy, s.pre, s.post = torch, _FakePolicy(), (lambda b: b), (lambda a: a)
    s.features = {"observation.state": (9,), "observation.images.top": (3, 4, 5)}
    s.visual, s.action_key, s.action_shape, s.worlds, s.task = {"observation.images.top"}, "action", (2,), 0, ""
    return s


def test_server_validates_requests_before_the_policy_sees_them():
    from policies.lerobot_bridge.server import RequestError

    s = _fake_server()
    good = {"observation.state": np.ones((2, 9), np.float32), "observation.images.top": np.full((2, 4, 5, 3), 255, np.uint8)}
    with pytest.raises(RequestError, match="before reset"):
        s.handle({"op": "act"}, good)
    for bad in ({"op": "reset", "worlds": 0, "seed": 0}, {"op": "reset", "worlds": 10 ** 6, "seed": 0},
                {"op": "reset", "worlds": True, "seed": 0}, {"op": "reset", "worlds": 2, "seed": -1},
                {"op": "reset", "worlds": 2, "seed": "1"}, {"op": "reset", "worlds": 2, "seed": 0, "task": 5}):
        with pytest.raises(RequestError):
            s.handle(bad, {})
    assert s.handle({"op": "reset", "worlds": 2, "seed": 3}, {})[0] == {"op": "ok"} and s.policy.resets == 1
    reply, out = s.handle({"op": "act"}, good)
    np.testing.assert_allclose(out["action"], [[1.0, 1.0], [1.0, 1.0]])  # images arrive as [0, 1] floats, CHW
    assert out["action"].dtype == np.float64
    for name, arrays in {"missing": {"observation.state": good["observation.state"]},
                         "extra": {**good, "x": np.zeros(1)},
                         "worlds": {**good, "observation.state": np.ones((3, 9), np.float32)},
                         "size": {**good, "observation.state": np.ones((2, 8), np.float32)},
                         "dtype": {**good, "observation.state": np.ones((2, 9))},
                         "image dtype": {**good, "observation.images.top": np.ones((2, 4, 5, 3), np.float32)},
                         "channels first": {**good, "observation.images.top": np.ones((2, 3, 4, 5), np.uint8)}}.items():
        with pytest.raises(RequestError):
            s.handle({"op": "act"}, arrays)
    with pytest.raises(RequestError, match="unknown"):
        s.handle({"op": "shutdown_everything"}, {})


def test_server_answers_a_malformed_frame_with_an_error_and_hangs_up():
    from policies.lerobot_bridge.server import serve

    s = _fake_server()
    a, b = socket.socketpair()
    with a, b:
        send_message(a, {"op": "act"}, {"observation.state": np.ones((2, 9), np.float32)})  # before reset
        a.sendall(struct.pack(">I", 5) + b"\x00\x00\x00\x09x")  # then garbage
        serve(s, b)  # returns: the stream cannot be trusted after a malformed frame
        assert recv_message(a)[0]["op"] == "error"
        reply = recv_message(a)[0]
        assert reply["op"] == "error" and "malformed" in reply["message"]


# ------------------------------------------------------------------------- twin side (fast, no lerobot)
def test_state_inputs_are_the_datasets_columns():
    from policies.dataset._recorder import pusht_frame, twin_snapshot
    from policies.lerobot_bridge._observations import ObservationEncoder
    from twin.env import Observation

    rng = np.random.default_rng(1)
    n = 3
    obs = Observation(pusher_xy=rng.normal(size=(n, 2)), block_pose=rng.normal(size=(n, 3)),
                      keypoints=rng.normal(size=(n, 8, 2)), joint_pos=rng.normal(size=(n, 7)),
                      joint_vel=rng.normal(size=(n, 7)), body_poses=rng.normal(size=(n, 2, 7)))
    enc = ObservationEncoder({"observation.state": (9,), "observation.environment_state": (19,)}, None)
    out = enc.encode(obs)
    for w in range(n):
        frame = pusht_frame(twin_snapshot(obs, obs.body_poses, w), np.zeros(2), 0.0, False, 1.0, np.zeros(7), False)
        for key in out:  # the dataset stores them as float32
            assert np.array_equal(out[key][w], frame[key].astype(np.float32))
    with pytest.raises(ValueError, match="not a feature"):
        ObservationEncoder({"observation.velocity": (2,)}, None)
    with pytest.raises(ValueError, match="shape"):
        ObservationEncoder({"observation.state": (2,)}, None)
    with pytest.raises(ValueError, match="no view"):
        ObservationEncoder({"observation.images.side": (3, 96, 96)}, None)


def _fake_checkpoint(d: Path, features: dict | None = None) -> Path:
    d.mkdir(parents=True)
    features = features or {"observation.state": {"type": "STATE", "shape": [9]}}
    (d / "config.json").write_text(json.dumps({"type": "diffusion", "input_features": features,
                                               "output_features": {"action": {"type": "ACTION", "shape": [2]}}}))
    for f in ("model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"):
        (d / f).write_text("{}")
    return d


def test_broken_lerobot_checkpoints_and_environments_are_refused_early(tmp_path):
    from policies.evaluation.specs import PolicySpecError, parse_policy, policy_names
    from policies.lerobot_bridge import LeRobotPolicy, LeRobotPolicyError, read_checkpoint

    with pytest.raises(PolicySpecError, match="not a directory"):
        parse_policy(f"lerobot:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicySpecError, match="no config.json"):
        parse_policy(f"lerobot:{tmp_path / 'empty'}")
    bad = _fake_checkpoint(tmp_path / "bad")
    (bad / "config.json").write_text("{not json")
    with pytest.raises(LeRobotPolicyError, match="not JSON"):
        read_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({"type": "act", "input_features": {}}))
    with pytest.raises(LeRobotPolicyError, match="not a LeRobot policy config"):
        read_checkpoint(bad)
    ok = _fake_checkpoint(tmp_path / "run" / "checkpoints" / "000010" / "pretrained_model")
    (ok / "model.safetensors").unlink()
    with pytest.raises(LeRobotPolicyError, match="lacks model.safetensors"):
        read_checkpoint(ok)
    (ok / "model.safetensors").write_text("not weights")
    spec = parse_policy(f"lerobot:{ok}")
    assert spec.kind == "lerobot" and policy_names([spec]) == ["lerobot-run-000010"]
    with pytest.raises(LeRobotPolicyError, match="no LeRobot Python"):
        LeRobotPolicy(ok, python=tmp_path / "no-python")
    # realsim's own Python has no lerobot: the process fails to load, and says so, before any episode
    with pytest.raises(LeRobotPolicyError, match="cannot load the LeRobot policy"):
        LeRobotPolicy(ok, python=sys.executable, startup_timeout_s=120)


def test_evaluate_exits_2_on_a_missing_lerobot_checkpoint(tmp_path, capsys):
    from launch.cli import main as cli

    out = tmp_path / "eval"
    assert cli(["evaluate", "--policy", f"lerobot:{tmp_path / 'nothing'}", "--out", str(out), "--no-progress"]) == 2
    assert "not a directory" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------ with LeRobot (slow)
@pytest.fixture(scope="module")
def lerobot_checkpoint(tmp_path_factory) -> Path:
    """A tiny diffusion policy (images, state, environment state) trained for 2 steps by lerobot-train
    on a dataset `realsim collect` wrote."""
    tmp = tmp_path_factory.mktemp("lerobot-policy")
    root = tmp / "collected"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "collect", "--episodes", "2", "--dataset", str(root),
                           "--out", str(tmp / "collect-run"), "--set", "episode_time_s=3", "--set", "min_free_mb=10",
                           "--set", "record_raw_frames=false"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp / "lerobot-run"
    proc = subprocess.run([str(Path(LEROBOT_PYTHON).parent / "lerobot-train"), "--dataset.repo_id=local/realsim",
                           f"--dataset.root={root}", "--dataset.video_backend=pyav", "--policy.type=diffusion",
                           "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.down_dims=[32,64]",
                           "--policy.diffusion_step_embed_dim=32", "--policy.num_inference_steps=4", "--steps=2",
                           "--batch_size=2", "--num_workers=0", "--save_checkpoint=true", "--save_freq=2",
                           "--eval_freq=0", "--wandb.enable=false", f"--output_dir={out}"],
                          capture_output=True, text=True, timeout=900, env=OFFLINE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return next(out.rglob("pretrained_model/config.json")).parent


@slow_lerobot
def test_lerobot_policy_acts_on_twin_worlds(lerobot_checkpoint):
    from dataclasses import replace

    from policies.lerobot_bridge import LeRobotPolicy
    from twin.config import TwinConfig
    from twin.env import PushTEnv

    twin = replace(TwinConfig(), num_worlds=3, device="cpu")
    env = PushTEnv(twin)
    seeds = np.array([5, 6, 7])
    obs, _info = env.reset(seed=seeds)
    with LeRobotPolicy(lerobot_checkpoint, twin, seed=1) as policy:
        assert policy.info["type"] == "diffusion" and "observation.images.top" in policy.info["input_features"]
        policy.reset(seeds=seeds)
        first = policy.act(obs)
        assert first.shape == (3, 2) and first.dtype == np.float64 and np.isfinite(first).all()
        ws = twin.workspace
        assert (first >= np.asarray(ws.low) - 0.1).all() and (first <= np.asarray(ws.high) + 0.1).all(), first
        second = policy.act(obs, active=np.array([True, False, True]))  # from the queue; world 1 holds
        np.testing.assert_array_equal(second[1], obs.pusher_xy[1])
        policy.reset(seeds=seeds)
        np.testing.assert_array_equal(policy.act(obs), first)  # the same seeds and observations
        policy.reset(worlds=np.array([0]), seeds=np.array([5]))  # a subset restarts the batch, as documented
        assert np.isfinite(policy.act(obs)).all()
        proc = policy._h.proc
    assert proc.poll() is not None and not Path(policy._h.tmp).exists()  # closed: process gone, socket removed


_ORPHAN = r"""
import sys, time
from twin.config import TwinConfig
from policies.lerobot_bridge import LeRobotPolicy
policy = LeRobotPolicy(sys.argv[1], TwinConfig())
print("SERVER", policy._h.proc.pid, policy._h.tmp, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@slow_lerobot
def test_the_policy_process_ends_when_the_twin_dies(lerobot_checkpoint):
    import time

    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN, str(lerobot_checkpoint)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        lines = iter(parent.stdout.readline, "")
        line = next((x for x in lines if x.startswith("SERVER")), "")  # Warp prints its banner first
        assert line, f"the parent exited with {parent.wait()}"
        pid, folder = int(line.split()[1]), Path(line.split()[2])
        assert _alive(pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid) and not folder.exists()  # the process removed its socket's folder


@slow_lerobot
def test_image_inputs_are_the_datasets_images(lerobot_checkpoint):
    from policies.dataset import DatasetReader
    from policies.lerobot_bridge._observations import ObservationEncoder, dataset_root
    from twin.config import TwinConfig
    from twin.env import Observation

    reader = DatasetReader(dataset_root(lerobot_checkpoint))
    ep, (video, _) = reader.episode(0), reader.video("observation.images.top", 0)
    k = [0, len(video) // 2, len(video) - 1]
    state, env_state = ep["observation.state"][k], ep["observation.environment_state"][k]
    obs = Observation(pusher_xy=state[:, :2].astype(np.float64), block_pose=env_state[:, :3].astype(np.float64),
                      keypoints=env_state[:, 3:].reshape(-1, 8, 2).astype(np.float64), joint_pos=ep["twin.joint_pos"][k],
                      joint_vel=ep["twin.joint_vel"][k], body_poses=ep["twin.body_poses"][k].reshape(-1, 2, 7))
    features = {"observation.state": (9,), "observation.environment_state": (19,), "observation.images.top": (3, 96, 96)}
    out = ObservationEncoder(features, TwinConfig(), root=reader.root).encode(obs)
    assert np.array_equal(out["observation.state"], state) and np.array_equal(out["observation.environment_state"], env_state)
    error = np.abs(out["observation.images.top"].astype(np.int16) - video[k].astype(np.int16))
    assert error.mean() < 6.0, error.mean()  # the same view and scene; the video's compression differs


@slow_lerobot
def test_realsim_evaluate_runs_a_lerobot_checkpoint(lerobot_checkpoint, tmp_path):
    from policies.evaluation.specs import parse_policy, policy_names

    spec = f"lerobot:{lerobot_checkpoint}"
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "evaluate", "--policy", spec, "--episodes", "2",
                           "--worlds", "2", "--set", "twin.max_episode_steps=5", "--device", "cpu", "--out", str(out),
                           "--videos", "0", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    info = json.loads((out / policy_names([parse_policy(spec)])[0] / "eval_info.json").read_text())
    assert len(info["per_episode"]) == 2


@slow_lerobot
def test_realsim_evaluate_refuses_a_broken_lerobot_checkpoint_before_any_episode(lerobot_checkpoint, tmp_path):
    broken = tmp_path / "pretrained_model"
    shutil.copytree(lerobot_checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)  # passes the file checks, fails to load
    for spec in (f"lerobot:{broken}", f"lerobot:{tmp_path / 'missing'}"):
        out = tmp_path / "eval"
        proc = subprocess.run([sys.executable, "-m", "launch.cli", "evaluate", "--policy", spec, "--episodes", "2",
                               "--worlds", "2", "--device", "cpu", "--out", str(out), "--videos", "0", "--no-progress"],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-5000:]
        assert "realsim evaluate:" in proc.stderr and not out.exists()
