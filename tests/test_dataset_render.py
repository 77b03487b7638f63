"""Re-rendering a dataset from a new viewpoint matches renders made live from that viewpoint; replay."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from launch.cli import main as cli
from policies.dataset import DatasetReader, DatasetSpec, DatasetWriter, TwinRenderer, pusht_features, validate_dataset
from policies.dataset._recorder import EpisodeRecorder
from twin.config import TwinConfig
from twin.perception.correction import VisualCorrector
from twin.env import PushTEnv
from twin.gaussian_scene import GaussianScene, GaussianSceneConfig
from twin.rig import VirtualCameraConfig

SIDE = VirtualCameraConfig("side", eye_m=(0.54, 0.6, 0.5), target_m=(0.54, 0.0, 0.0), width=64, height=48, hfov_deg=60.0)
TOP = VirtualCameraConfig("top", eye_m=(0.70, 0.0, 0.85), target_m=(0.54, 0.0, 0.0), width=48, height=48, hfov_deg=45.0)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-12)))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """An episode driven through a twin, recorded with a top camera, plus live renders from SIDE."""
    torch.set_num_threads(1)
    from launch.config import to_dict

    twin = TwinConfig()
    gauss = GaussianSceneConfig()
    root = tmp_path_factory.mktemp("render") / "ds"
    env = PushTEnv(twin)
    obs, _ = env.reset(seed=4)
    writer = DatasetWriter(root, DatasetSpec(fps=twin.control_hz, features=pusht_features({"top": (48, 48)})),
                           twin_meta={"fps": twin.control_hz, "twin": to_dict(twin), "gaussians": to_dict(gauss),
                                      "cameras": [to_dict(TOP)]}, min_free_mb=1)
    rec = EpisodeRecorder(writer, env, TwinRenderer(twin, gauss, (TOP,)), task="push")
    live = VisualCorrector(GaussianScene(twin, gauss))
    live.set_cameras({SIDE.serial: (SIDE.intrinsics, SIDE.T_world_camera)})
    live_frames = []
    block = obs.block_pose[0, :2]
    for t in range(12):
        with torch.no_grad():  # the live render of the state this frame's action is taken from
            c, _, _ = live.render(env.body_poses()[0], env.link_poses()[0])["side"]
        live_frames.append((c.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8))
        rec.on_act(obs)
        action = obs.pusher_xy + np.clip(block - obs.pusher_xy[0], -0.03, 0.03)
        obs, _, _, _, info = env.step(action)
        # the fields of twin.live.StepRecord the recorder reads
        record = SimpleNamespace(action=action[0], q_robot=None, correction_active=False)
        rec.on_step(record, None, obs, info)
    assert rec.save() == 0
    return root, np.stack(live_frames), twin, gauss


def test_state_render_equals_live_render(recorded):
    root, live, twin, gauss = recorded
    data = DatasetReader(root).episode(0)
    assert data["next.done"][-1, 0] and not data["next.done"][:-1].any()  # the recorder marks the end
    again = TwinRenderer(twin, gauss, (SIDE,)).render_episode(data["twin.body_poses"], data["twin.joint_pos"])["side"]
    assert np.abs(again.astype(int) - live.astype(int)).max() <= 1  # float32 rasterization, rounding
    assert not np.array_equal(live[0], live[-1])  # the scene moved


def test_cli_render_adds_a_feature_matching_live(recorded, capsys):
    root, live, _, _ = recorded
    assert cli(["dataset", "render", str(root), "--camera", "side", "--eye", "0.54,0.6,0.5", "--target", "0.54,0,0",
                "--size", "64x48", "--hfov", "60"]) == 0
    assert "added observation.images.side" in capsys.readouterr().out
    assert validate_dataset(root) == []
    r = DatasetReader(root)
    assert r.info["features"]["observation.images.side"]["shape"] == [48, 64, 3]
    assert "observation.images.side" in r.stats
    frames, times = r.video("observation.images.side", 0)
    assert frames.shape == live.shape
    for got, want in zip(frames, live):
        assert _psnr(got, want) > 30.0
    # another viewpoint is clearly not the same picture
    top, _ = r.video("observation.images.top", 0)
    assert top.shape[1:] != live.shape[1:] or _psnr(top[0], live[0]) < 20
    assert _psnr(frames[0], frames[-1]) < _psnr(frames[0], live[0])
    assert cli(["dataset", "render", str(root), "--camera", "side", "--eye", "1,1,1"]) == 2  # already there


def test_replay_reproduces_an_uncorrected_episode(recorded):
    from policies.dataset._replay import replay_episode

    root, _, twin, _ = recorded
    r = replay_episode(DatasetReader(root), 0, twin)
    assert r["steps"] == 12
    assert r["final_pos_err_mm"] < 0.5 and r["median_pos_err_mm"] < 0.5  # same twin, same actions
    assert r["final_coverage"] == pytest.approx(r["recorded_coverage"], abs=1e-4)
