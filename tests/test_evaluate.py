"""Offline evaluation (`realsim evaluate`): batched episodes equal single-world ones, saved twin states fork
exactly, LeRobot-shaped results, videos, and policies that do not load stop the job first."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from policies.evaluation.batched import BatchEvaluator, evaluate_seeds
from policies.evaluation.job import EvaluateConfig, evaluate_policies
from policies.evaluation.specs import PolicySpecError, build_policy, check_policy, parse_policy, policy_names
from policies.learned.config import ChunkingConfig, NetworkConfig, PolicyConfig
from policies.training.config import OptimConfig, ScheduleConfig, TrainConfig
from policies.training.data import load_windows
from policies.training.trainer import Trainer
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.state import TwinStateError, load_twin_state, save_twin_state

from _policy_data import write_line_dataset

REPO = Path(__file__).resolve().parents[1]
SHORT = TwinConfig(max_episode_steps=25)
SMALL = dict(network=NetworkConfig(down_dims=(32, 64), time_embed_dim=32),
             chunking=ChunkingConfig(n_obs_steps=2, horizon=8, n_action_steps=4))
#: LeRobot's names in ``lerobot_eval``'s eval_info (lerobot 0.4.4, scripts/lerobot_eval.py)
LEROBOT_EPISODE_KEYS = {"episode_ix", "sum_reward", "max_reward", "success", "seed"}
LEROBOT_AGGREGATED_KEYS = {"avg_sum_reward", "avg_max_reward", "pc_success", "eval_s", "eval_ep_s"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A diffusion checkpoint trained for a few steps (it samples: its noise must follow the episode)."""
    root = tmp_path_factory.mktemp("eval")
    dataset = write_line_dataset(root / "lines")
    cfg = TrainConfig(dataset=str(dataset), output=str(root / "run"), device="cpu",
                      policy=PolicyConfig(type="diffusion", **SMALL),
                      optim=OptimConfig(lr=5e-3, warmup_steps=2, batch_size=16, ema_decay=0.9),
                      schedule=ScheduleConfig(steps=3, log_every=100, save_every=0, eval_every=0))
    trainer = Trainer(cfg, load_windows(dataset, cfg.policy))
    trainer.train(progress=False)
    from policies.learned.checkpoint import save_pretrained

    return save_pretrained(trainer.ema_model(), root / "ckpt" / "pretrained_model")


def test_batched_episodes_equal_single_world_ones_for_the_same_seeds(checkpoint) -> None:
    """W = 3 worlds in lockstep give every episode what it gets alone (W = 1), also in a batch padded with
    idle worlds; and episode e starts where PushTEnv.reset puts seed e. (The twin's worlds are bit-identical
    whatever the batch; the network's batched arithmetic rounds differently, ~1e-6 in its actions.)"""
    spec = parse_policy(str(checkpoint))
    seeds = [1000, 1001, 1002, 1003]
    batched_eval = BatchEvaluator(SHORT, 3)
    batched, _, _ = evaluate_seeds(batched_eval, build_policy(spec, batched_eval.config), seeds)  # 3 + 1 padded
    single_eval = BatchEvaluator(SHORT, 1)
    policy = build_policy(spec, single_eval.config)
    singles = [evaluate_seeds(single_eval, policy, [s])[0][0] for s in seeds]
    for b, s in zip(batched, singles):
        assert b["seed"] == s["seed"] and b["success"] == s["success"] and b["steps"] == s["steps"]
        np.testing.assert_allclose([b["max_coverage"], b["sum_reward"], b["pos_error_m"]],
                                   [s["max_coverage"], s["sum_reward"], s["pos_error_m"]], atol=1e-3)
    assert len({round(r["pos_error_m"], 6) for r in batched}) == 4  # four different episodes
    env = PushTEnv(replace(SHORT, num_worlds=1))
    _, traces, _ = evaluate_seeds(single_eval, policy, [1002], videos=1)
    obs, _ = env.reset(seed=1002)
    np.testing.assert_array_equal(traces[0].arrays()[0][0], obs.body_poses[0])


def test_a_forked_state_reproduces_the_saved_twin_exactly(tmp_path) -> None:
    """A state saved mid-episode, written and read back, puts another twin (another batch size) in the
    same state, and both continue identically."""
    env = PushTEnv(replace(SHORT, num_worlds=2))
    obs, _ = env.reset(seed=[1005, 1006])
    for k in range(6):
        obs, *_ = env.step(obs.pusher_xy + np.array([[0.01, 0.004], [-0.004, 0.01]]))
    path = save_twin_state(tmp_path / "state.npz", env.get_state(1, {"source": "test", "step": 6}))
    state = load_twin_state(path)
    assert state.meta == {"source": "test", "step": 6} and state.elapsed_steps == 6
    fork = PushTEnv(replace(SHORT, num_worlds=3))
    fork.reset(seed=0)
    fork.set_state(state)
    for w in range(3):
        again = fork.get_state(w)
        for name in ("joint_pos", "joint_vel", "pusher_xy", "pusher_vel", "body_q", "body_qd"):
            np.testing.assert_array_equal(getattr(again, name), getattr(state, name), err_msg=name)
    action = obs.pusher_xy[1] + np.array([0.02, -0.01])
    for _ in range(5):
        a, *_ = env.step(np.stack([obs.pusher_xy[0], action]))
        b, *_ = fork.step(np.tile(action, (3, 1)))
    for w in range(3):
        np.testing.assert_allclose(b.body_poses[w], a.body_poses[1], atol=1e-6)
        np.testing.assert_allclose(b.joint_pos[w], a.joint_pos[1], atol=1e-9)


def test_twin_state_files_are_checked(tmp_path) -> None:
    env = PushTEnv(replace(SHORT, num_worlds=1))
    env.reset(seed=3)
    good = save_twin_state(tmp_path / "good.npz", env.get_state(0))
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    bad_q = dict(arrays, body_q=np.full((2, 7), np.nan, dtype=np.float32))
    np.savez(tmp_path / "nan.npz", **bad_q)
    np.savez(tmp_path / "short.npz", **{k: v for k, v in arrays.items() if k != "joint_vel"})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, match in (("nan.npz", "body_q"), ("short.npz", "joint_vel"), ("junk.npz", "not a twin state"),
                        ("missing.npz", "no such")):
        with pytest.raises(TwinStateError, match=match):
            load_twin_state(tmp_path / name)
    other = PushTEnv(replace(SHORT, num_worlds=1, block=replace(SHORT.block, bar_length_m=0.21)))
    with pytest.raises(ValueError, match="block"):
        other.set_state(load_twin_state(good))


def test_eval_info_has_lerobots_fields_and_videos_open(checkpoint, tmp_path) -> None:
    """Two policies on the same 3 episodes (W = 2: a full and a padded batch): per policy an eval_info.json
    with LeRobot's names (and ours), videos of the first 2 episodes, and a summary."""
    from policies.dataset._video import decode_video

    specs = [parse_policy(str(checkpoint)), parse_policy("expert:contacts=6,planner_worlds=24")]
    infos = evaluate_policies(specs, replace(SHORT, max_episode_steps=8), EvaluateConfig(episodes=3, worlds=2, videos=2),
                              tmp_path, progress=False)
    assert list(infos) == policy_names(specs) == ["eval0-ckpt", "expert-contacts6-planner_worlds24"]
    for name in infos:
        info = json.loads((tmp_path / name / "eval_info.json").read_text())
        assert [e["episode_ix"] for e in info["per_episode"]] == [0, 1, 2]
        assert [e["seed"] for e in info["per_episode"]] == [1000, 1001, 1002]
        for e in info["per_episode"]:
            assert LEROBOT_EPISODE_KEYS | {"max_coverage", "steps"} <= set(e) and e["steps"] == 8
            assert 0.0 <= e["max_reward"] <= 1.0 and e["sum_reward"] <= 8 * e["max_reward"] + 1e-9
        agg = info["aggregated"]
        assert LEROBOT_AGGREGATED_KEYS | {"pc_success_ci95", "avg_max_coverage"} <= set(agg)
        assert agg["pc_success"] == 100 * np.mean([e["success"] for e in info["per_episode"]])
        assert len(info["video_paths"]) == 2
        frames, _ = decode_video(info["video_paths"][1])
        assert frames.shape == (9, 240, 320, 3)  # the start and 8 steps
        assert frames[0].std() > 10  # an image, not a blank frame
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["policies"]) == set(infos)


def test_policy_specs_are_checked_before_any_episode(tmp_path) -> None:
    for text, match in (("expert:contacts=x", "int"), ("expert:nothing=1", "KEY=VALUE"), (str(tmp_path / "none"), "neither")):
        with pytest.raises(PolicySpecError, match=match):
            parse_policy(text)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(PolicySpecError, match="broken"):
        check_policy(parse_policy(str(broken)), SHORT)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "evaluate", "--policy", "expert", str(broken),
                           "--episodes", "2", "--device", "cpu", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "broken" in proc.stderr and not out.exists()  # nothing ran, nothing written


def test_ctrl_c_keeps_the_episodes_that_finished(checkpoint, tmp_path, monkeypatch) -> None:
    from policies.evaluation import job

    calls = []
    run = job.LocalRunner.run

    def interrupted_second_unit(self, unit, progress=None):  # noqa: ANN001, ANN202
        calls.append(unit)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run(self, unit, progress)

    monkeypatch.setattr(job.LocalRunner, "run", interrupted_second_unit)
    with pytest.raises(KeyboardInterrupt):
        evaluate_policies([parse_policy(str(checkpoint))], replace(SHORT, max_episode_steps=4),
                          EvaluateConfig(episodes=4, worlds=2, videos=1), tmp_path, progress=False)
    info = json.loads((tmp_path / "eval0-ckpt" / "eval_info.json").read_text())
    assert info["interrupted"] and [e["seed"] for e in info["per_episode"]] == [1000, 1001]
    assert json.loads((tmp_path / "summary.json").read_text())["interrupted"]


def test_reuse_keeps_only_finished_evaluations_with_the_same_settings(checkpoint, tmp_path, monkeypatch) -> None:
    """``reuse`` (a comparison that goes on after Ctrl-C): a finished evaluation of the same episodes and
    settings is kept, whatever the batch size; another seed, noise, twin or an interrupted one is run again."""
    from policies.evaluation import job

    twin, spec = replace(SHORT, max_episode_steps=4), parse_policy("expert:contacts=4,planner_worlds=8")
    config = EvaluateConfig(episodes=2, worlds=2, videos=0)
    first = evaluate_policies([spec], twin, config, tmp_path, progress=False)
    runs = []
    run = job.LocalRunner.run
    monkeypatch.setattr(job.LocalRunner, "run", lambda self, unit, progress=None: runs.append(unit) or run(self, unit, progress))
    again = evaluate_policies([spec], twin, replace(config, worlds=1), tmp_path, progress=False, reuse=True)
    assert runs == [] and again == first  # kept as it was
    for changed in (replace(config, seed=2000), replace(config, observation_noise=replace(config.observation_noise, position_m=0.0))):
        evaluate_policies([spec], twin, changed, tmp_path, progress=False, reuse=True)
        assert len(runs) == 1
        runs.clear()
    evaluate_policies([spec], replace(twin, max_episode_steps=5), config, tmp_path, progress=False, reuse=True)
    assert len(runs) == 1  # another twin
    runs.clear()
    path = tmp_path / "expert-contacts4-planner_worlds8" / "eval_info.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"interrupted": True}))
    evaluate_policies([spec], twin, replace(config, observation_noise=replace(config.observation_noise, position_m=0.0)),
                      tmp_path, progress=False, reuse=True)
    assert len(runs) == 1
