"""Learned chunking policies: overfitting, save/load, the per-world chunk queue, batching, errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from policies.dataset import DatasetError
from policies.learned.checkpoint import CheckpointError, load_pretrained, save_pretrained
from policies.learned.config import ChunkingConfig, NetworkConfig, PolicyConfig
from policies.learned.features import FeatureError
from policies.learned.policy import LearnedPolicy
from policies.training.config import OptimConfig, ScheduleConfig, TrainConfig
from policies.training.data import load_windows
from policies.training.trainer import Trainer
from twin.env import Observation

from _policy_data import line_episode, write_line_dataset

SMALL = dict(network=NetworkConfig(down_dims=(32, 64), time_embed_dim=32),
             chunking=ChunkingConfig(n_obs_steps=2, horizon=8, n_action_steps=4))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def line_dataset(tmp_path_factory):
    return write_line_dataset(tmp_path_factory.mktemp("ds") / "lines")


def _train(dataset, tmp_path, kind: str, steps: int, **kw) -> Trainer:
    cfg = TrainConfig(dataset=str(dataset), output=str(tmp_path / "run"), device="cpu",
                      policy=PolicyConfig(type=kind, **SMALL),
                      optim=OptimConfig(lr=5e-3, warmup_steps=10, batch_size=32, ema_decay=0.99),
                      schedule=ScheduleConfig(steps=steps, log_every=kw.pop("log_every", 25), save_every=0, eval_every=0))
    cfg = replace(cfg, **kw)
    return Trainer(cfg, load_windows(dataset, cfg.policy))


def _obs(pusher_xy: np.ndarray) -> Observation:
    n = len(pusher_xy)
    block = np.tile([0.55, 0.05, 0.3], (n, 1))
    kp = block[:, None, :2] + 0.03 * np.stack([np.cos(np.arange(8)), np.sin(np.arange(8))], axis=1)[None]
    return Observation(pusher_xy=np.asarray(pusher_xy, float), block_pose=block, keypoints=kp,
                       joint_pos=np.zeros((n, 7)), joint_vel=np.zeros((n, 7)))


# the diffusion head overfits the same way in 34 s more: it runs with -m slow
@pytest.mark.parametrize("kind", ["flow", pytest.param("diffusion", marks=pytest.mark.slow)])
def test_overfitting_a_tiny_dataset_drives_the_loss_down_and_reproduces_its_motion(line_dataset, tmp_path, kind):
    trainer = _train(line_dataset, tmp_path, kind, steps=1200, log_every=100)
    trainer.train(progress=False)
    losses = [e["loss"] for e in trainer.log if "loss" in e]
    assert losses[-1] < 0.1 * losses[0] and losses[-1] < 0.05, losses  # first: the mean of the first 100 steps
    # The EMA policy, started where episode 0 starts, follows episode 0's line: within 12 mm of its
    # targets over 12 steps (a policy that ignored its observations would be centimetres off: the two
    # episodes part by 4 cm over them). Measured after this training: 2-3 mm (flow), 3-6 mm (diffusion).
    policy = LearnedPolicy(trainer.ema_model(), seed=0)
    frames = line_episode((0.45, 0.0), (0.004, 0.002), 24)
    actions = np.array([policy.act(_obs(frames[k]["observation.state"][None, :2]))[0] for k in range(12)])
    demo = np.array([frames[k]["action"] for k in range(12)])
    assert np.abs(actions - demo).max() < 0.012, np.abs(actions - demo).max(axis=1)


def test_save_and_load_give_identical_actions(line_dataset, tmp_path):
    trainer = _train(line_dataset, tmp_path, "flow", steps=5)
    model = trainer.ema_model()
    path = save_pretrained(model, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_pretrained(path)
    obs = _obs(np.array([[0.45, 0.0], [0.5, 0.1], [0.6, -0.1]]))
    a, b = LearnedPolicy(model, seed=3), LearnedPolicy(loaded, seed=3)
    for _ in range(6):
        np.testing.assert_array_equal(a.act(obs), b.act(obs))
    assert json.loads((path / "config.json").read_text())["input_features"]["observation.state"]["names"] == [
        "pusher_x", "pusher_y"]


@pytest.mark.parametrize("kind", ["flow", "diffusion"])
def test_traced_sampling_equals_the_network_and_sees_new_weights(line_dataset, tmp_path, kind):
    import torch

    from policies.learned.traced import TracedDenoiser

    model = _train(line_dataset, tmp_path, kind, steps=3).ema_model().eval()
    traced = TracedDenoiser(model.net)
    n_obs, dim = model.config.chunking.n_obs_steps, sum(len(f.names) for f in model.config.observation.state)
    state = torch.as_tensor(np.random.default_rng(0).normal(0.5, 0.05, (2, n_obs, dim)), dtype=torch.float32)
    noise = torch.randn((2, model.config.chunking.horizon, 2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model.predict(state, noise)
        torch.testing.assert_close(model.predict(state, noise, net=traced), eager, rtol=1e-5, atol=1e-6)
        for p in model.net.parameters():  # weights loaded or trained after the trace are the ones used
            p.mul_(0.5)
        changed = model.predict(state, noise)
        torch.testing.assert_close(model.predict(state, noise, net=traced), changed, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(changed, eager)


def _policy(dataset, tmp_path, kind="flow"):
    trainer = _train(dataset, tmp_path, kind, steps=2)
    return trainer.ema_model()


def test_the_chunk_queue_executes_n_action_steps_per_world_and_a_reset_clears_one_world(line_dataset, tmp_path):
    policy = LearnedPolicy(_policy(line_dataset, tmp_path))
    obs = _obs(np.array([[0.45, 0.0], [0.5, 0.1], [0.6, -0.1]]))
    policy.act(obs)
    assert policy.predictions == 3 and [policy.queued(w) for w in range(3)] == [3, 3, 3]
    policy.act(obs, active=np.array([True, False, True]))  # world 1 paused: its queue waits
    assert [policy.queued(w) for w in range(3)] == [2, 3, 2]
    policy.reset(np.array([False, False, True]))  # a new episode in world 2 only
    assert [policy.queued(w) for w in range(3)] == [2, 3, 0]
    policy.act(obs)
    assert policy.predictions == 4  # only world 2 predicted again
    for _ in range(2):
        policy.act(obs)
    assert policy.predictions == 5 and [policy.queued(w) for w in range(3)] == [3, 0, 1]  # world 0: 4 executed, new chunk


def test_batched_and_single_world_calls_agree(line_dataset, tmp_path):
    model = _policy(line_dataset, tmp_path, "diffusion")
    xy = np.array([[0.45, 0.0], [0.5, 0.1], [0.6, -0.1]])
    batched = LearnedPolicy(model, seed=7)
    singles = [LearnedPolicy(model, seed=7 + w) for w in range(3)]  # world w samples with seed + w
    for k in range(6):
        step = xy + 0.003 * k
        out = batched.act(_obs(step))
        for w in range(3):
            np.testing.assert_allclose(out[w], singles[w].act(_obs(step[w:w + 1]))[0], atol=1e-6)


def test_inactive_worlds_hold_their_pusher(line_dataset, tmp_path):
    policy = LearnedPolicy(_policy(line_dataset, tmp_path))
    xy = np.array([[0.45, 0.0], [0.5, 0.1]])
    out = policy.act(_obs(xy), active=np.array([False, True]))
    np.testing.assert_array_equal(out[0], xy[0])


def test_bad_checkpoints_and_datasets_give_clear_errors(line_dataset, tmp_path):
    path = save_pretrained(_policy(line_dataset, tmp_path), tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "absent")
    # features the twin cannot provide
    cfg = json.loads((path / "config.json").read_text())
    bad = tmp_path / "bad_features"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    cfg["observation"]["state"][0]["names"] = ["pusher_x", "gripper_width"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="gripper_width"):
        load_pretrained(bad)
    # features the twin provides, but not the ones the weights were trained with
    cfg["observation"]["state"][0]["names"] = ["pusher_x", "pusher_y", "block_yaw"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not fit its config"):
        load_pretrained(bad)
    # a truncated weights file
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_pretrained(path)
    # datasets: none of the policy's features, or no episodes
    with pytest.raises(DatasetError, match="no episode left"):
        load_windows(line_dataset, PolicyConfig(), only_successful=True)
    with pytest.raises(DatasetError):
        load_windows(tmp_path / "nothing", PolicyConfig())
    with pytest.raises(FeatureError):
        PolicyConfig.from_json({**cfg, "observation": {"state": [{"key": "observation.state", "names": []}]}})


def test_an_empty_dataset_is_refused(tmp_path):
    from policies.dataset import DatasetSpec, DatasetWriter, pusht_features

    DatasetWriter(tmp_path / "empty", DatasetSpec(fps=10, features=pusht_features({})))
    with pytest.raises(DatasetError, match="holds no episodes"):
        load_windows(tmp_path / "empty", PolicyConfig())


def test_resume_continues_the_same_loss_curve(line_dataset, tmp_path):
    straight = _train(line_dataset, tmp_path / "a", "diffusion", steps=20, log_every=1)
    straight.train(progress=False)
    first = _train(line_dataset, tmp_path / "b", "diffusion", steps=20, log_every=1)
    first.config = replace(first.config, schedule=replace(first.config.schedule, steps=10))
    first.train(progress=False)
    second = _train(line_dataset, tmp_path / "b", "diffusion", steps=20, log_every=1)
    second.resume(tmp_path / "b" / "run" / "checkpoints" / "last")
    assert second.step == 10
    second.train(progress=False)
    a = [e["loss"] for e in straight.log]
    b = [e["loss"] for e in second.log]
    assert len(a) == len(b) == 20
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_ctrl_c_leaves_a_resumable_checkpoint(line_dataset, tmp_path):
    def interrupt(model):
        raise KeyboardInterrupt

    trainer = _train(line_dataset, tmp_path, "flow", steps=50)
    trainer.config = replace(trainer.config, schedule=replace(trainer.config.schedule, eval_every=7))
    trainer.evaluate = interrupt
    with pytest.raises(KeyboardInterrupt):
        trainer.train(progress=False)
    last = tmp_path / "run" / "checkpoints" / "last"
    assert last.resolve().name == "000007"
    assert LearnedPolicy.from_pretrained(last / "pretrained_model").config.type == "flow"
    again = _train(line_dataset, tmp_path, "flow", steps=50)
    again.resume(last)
    assert again.step == 7


def test_a_checkpoint_for_another_control_rate_is_refused(line_dataset, tmp_path, caplog):
    from launch.config import to_dict
    from policies.learned.checkpoint import check_twin
    from twin.config import TwinConfig

    trained = replace(PolicyConfig(), twin=to_dict(TwinConfig()))
    check_twin(trained, TwinConfig())  # the same twin: silent
    assert not caplog.records
    with pytest.raises(CheckpointError, match="Hz"):
        check_twin(trained, replace(TwinConfig(), control_hz=20.0))
    block = replace(TwinConfig().block, bar_length_m=0.21)  # e.g. the live loop measured the real block
    check_twin(trained, replace(TwinConfig(), block=block))
    assert "block differs" in caplog.text
