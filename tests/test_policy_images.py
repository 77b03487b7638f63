"""Image observations rendered from the twin, the image encoder's crops, and an image policy end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from policies.learned.config import ChunkingConfig, NetworkConfig, ObservationConfig, PolicyConfig, VisionConfig
from policies.learned.features import StateFeature
from policies.learned.images import ObservationRenderer
from policies.learned.policy import LearnedPolicy
from policies.learned.vision import crop_images
from policies.training.config import OptimConfig, ScheduleConfig, TrainConfig
from policies.training.data import load_windows
from policies.training.trainer import Trainer
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.rig import VirtualCameraConfig

from _policy_data import write_line_dataset

VIEW = VirtualCameraConfig("overhead", eye_m=(0.70, 0.0, 0.85), target_m=(0.54, 0.0, 0.0), width=32, height=32,
                           hfov_deg=45.0)


@pytest.fixture(scope="module")
def env3():
    env = PushTEnv(TwinConfig(num_worlds=3))
    env.reset(seed=[0, 1, 2])
    return env


def test_images_of_n_worlds_equal_n_single_renders(env3):
    obs = env3.observe()
    renderer = ObservationRenderer(TwinConfig(), (VIEW,))
    batch = renderer.render(obs.body_poses, obs.joint_pos)["overhead"]
    assert batch.shape == (3, 32, 32, 3) and batch.dtype == np.uint8
    for w in range(3):
        single = renderer.render(obs.body_poses[w:w + 1], obs.joint_pos[w:w + 1])["overhead"][0]
        assert np.abs(single.astype(int) - batch[w].astype(int)).max() <= 1
    assert np.abs(batch[0].astype(int) - batch[1].astype(int)).max() > 50  # the worlds' blocks differ


def test_a_wrist_view_follows_each_worlds_arm():
    from policies.learned.config import WRIST_VIEW

    env = PushTEnv(TwinConfig(num_worlds=3))
    obs, _ = env.reset(seed=[0, 1, 2])
    targets = obs.pusher_xy + np.array([[0.0, 0.0], [0.06, 0.05], [-0.04, -0.06]])
    for _ in range(15):  # the three arms go three ways
        obs, *_ = env.step(targets)
    wrist = replace(WRIST_VIEW, width=48, height=48)
    renderer = ObservationRenderer(TwinConfig(), (VIEW, wrist))
    images = renderer.render(obs.body_poses, obs.joint_pos)
    assert images["wrist"].shape == (3, 48, 48, 3)
    for w in range(3):  # batched per-world camera poses equal single renders
        single = renderer.render(obs.body_poses[w:w + 1], obs.joint_pos[w:w + 1])["wrist"][0]
        assert np.abs(single.astype(int) - images["wrist"][w].astype(int)).max() <= 1

    def pusher(img: np.ndarray) -> np.ndarray:  # the blue pusher's pixels
        return (img[..., 2] > 150) & (img[..., 0] < 100)

    # the pusher is fixed to the flange: it stays put in the wrist view while the arms and what they see differ
    masks = [pusher(images["wrist"][w]) for w in range(3)]
    assert all(m.sum() > 20 for m in masks)
    for m in masks[1:]:
        assert (m & masks[0]).sum() / (m | masks[0]).sum() > 0.8
    assert min(np.linalg.norm(obs.pusher_xy[w] - obs.pusher_xy[0]) for w in (1, 2)) > 0.03  # the arms moved apart
    assert min(np.abs(images["wrist"][w].astype(int) - images["wrist"][0]).mean() for w in (1, 2)) > 1.0  # other views
    with pytest.raises(ValueError, match="mounted on the hand"):
        WRIST_VIEW.T_world_camera
    with pytest.raises(ValueError, match="mount must be one of"):
        replace(WRIST_VIEW, mount="elbow")


def test_crops_are_centred_at_run_time_and_random_in_training():
    images = torch.arange(2 * 10 * 10 * 3, dtype=torch.float32).reshape(2, 10, 10, 3)
    centre = crop_images(images, 0.8)
    assert centre.shape == (2, 8, 8, 3) and torch.equal(centre, images[:, 1:9, 1:9])
    g = torch.Generator().manual_seed(0)
    crops = [crop_images(images, 0.5, g, random=True) for _ in range(8)]
    assert all(c.shape == (2, 5, 5, 3) for c in crops)
    assert len({tuple(c[0, 0, 0].tolist()) for c in crops}) > 1  # different places
    for c in crops:  # each a contiguous window of its own image
        top, left = divmod(int(c[1, 0, 0, 0] - images[1, 0, 0, 0]) // 3, 10)
        assert torch.equal(c[1], images[1, top:top + 5, left:left + 5])


def test_an_image_policy_trains_on_rendered_views_and_acts_on_the_twin(tmp_path, env3):
    torch.set_num_threads(1)
    dataset = write_line_dataset(tmp_path / "lines", episodes=2, frames=12)
    policy_cfg = PolicyConfig(
        type="flow", observation=ObservationConfig(state=(StateFeature("observation.state", ("pusher_x", "pusher_y")),),
                                                   images=(VIEW,), vision=VisionConfig(channels=(8, 16), keypoints=8,
                                                                                       feature_dim=16)),
        network=NetworkConfig(down_dims=(32, 64), time_embed_dim=32), chunking=ChunkingConfig(2, 8, 4))
    cfg = TrainConfig(dataset=str(dataset), output=str(tmp_path / "run"), device="cpu", policy=policy_cfg,
                      optim=OptimConfig(batch_size=8, warmup_steps=2),
                      schedule=ScheduleConfig(steps=6, log_every=2, save_every=0, eval_every=0))
    windows = load_windows(dataset, policy_cfg, twin=TwinConfig(), cache_dir=tmp_path / "cache")
    assert windows.images["overhead"].shape == (24, 32, 32, 3)
    cached = list((tmp_path / "cache").glob("overhead-*.npy"))
    assert len(cached) == 1
    again = load_windows(dataset, policy_cfg, twin=TwinConfig(), cache_dir=tmp_path / "cache")  # from the cache
    assert torch.equal(again.images["overhead"], windows.images["overhead"])
    trainer = Trainer(cfg, windows)
    trainer.train(progress=False)
    assert np.isfinite(trainer.log[-1]["loss"])
    policy = LearnedPolicy(trainer.ema_model(), twin=TwinConfig())
    obs = env3.observe()
    actions = policy.act(obs)
    assert actions.shape == (3, 2) and np.all(np.isfinite(actions)) and policy.predictions == 3
    with pytest.raises(ValueError, match="body poses"):
        policy.act(replace(obs, body_poses=None))
    with pytest.raises(ValueError, match="twin's config"):
        load_windows(dataset, policy_cfg)
