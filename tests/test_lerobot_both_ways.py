"""LeRobot both ways (``make lerobot-env``, slow): LeRobot's own ``lerobot-train --policy.type=diffusion``
trains on a dataset as ``realsim collect`` writes it (rendered view and raw camera frames), and
``realsim train`` trains on a dataset LeRobot's own ``LeRobotDataset.create`` wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policies.dataset import DatasetReader, validate_dataset

REPO = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = os.environ.get("REALSIM_LEROBOT_PYTHON") or str(REPO / ".venv-lerobot" / "bin" / "python")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(LEROBOT_PYTHON).exists(), reason="no Python environment with lerobot")]
OFFLINE = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled")


def test_lerobot_train_diffusion_on_a_collected_dataset(tmp_path):
    root, run = tmp_path / "collected", tmp_path / "collect-run"
    proc = subprocess.run([sys.executable, "-m", "launch.cli", "collect", "--episodes", "2", "--dataset", str(root),
                           "--out", str(run), "--set", "episode_time_s=3", "--set", "min_free_mb=10"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert validate_dataset(root) == []
    reader = DatasetReader(root)
    assert reader.spec.video_keys == ["observation.images.top"] and reader.spec.raw_cameras  # both kinds of images
    out = tmp_path / "lerobot-run"
    lerobot_train = str(Path(LEROBOT_PYTHON).parent / "lerobot-train")
    proc = subprocess.run([lerobot_train, "--dataset.repo_id=local/realsim-collected", f"--dataset.root={root}",
                           "--dataset.video_backend=pyav", "--policy.type=diffusion", "--policy.device=cpu",
                           "--policy.push_to_hub=false", "--steps=3", "--batch_size=2", "--num_workers=0",
                           "--log_freq=1", "--save_checkpoint=true", "--save_freq=3", "--eval_freq=0",
                           "--wandb.enable=false", f"--output_dir={out}"],
                          capture_output=True, text=True, timeout=900, env=OFFLINE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    cfg = json.loads(next(out.rglob("pretrained_model/config.json")).read_text())
    assert cfg["type"] == "diffusion"
    assert set(cfg["input_features"]) == {"observation.state", "observation.environment_state", "observation.images.top"}
    assert cfg["input_features"]["observation.images.top"]["shape"] == [3, 96, 96]


_CREATE = r"""
import sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
state = ["pusher_x", "pusher_y"] + [f"joint_{i}" for i in range(1, 8)]
env = ["block_x", "block_y", "block_yaw"] + [f"keypoint_{i}_{a}" for i in range(8) for a in "xy"]
features = {"observation.state": {"dtype": "float32", "shape": (9,), "names": state},
            "observation.environment_state": {"dtype": "float32", "shape": (19,), "names": env},
            "action": {"dtype": "float32", "shape": (2,), "names": ["target_x", "target_y"]}}
ds = LeRobotDataset.create("local/made-by-lerobot", fps=10, root=sys.argv[1], features=features, use_videos=False)
rng = np.random.default_rng(0)
for e in range(3):
    p = np.array([0.45, 0.0]) + 0.05 * e
    for k in range(20):
        step = np.array([0.004, 0.002 * (e - 1)])
        ds.add_frame({"observation.state": np.r_[p + k * step, np.zeros(7)].astype(np.float32),
                      "observation.environment_state": rng.normal(0.3, 0.01, 19).astype(np.float32),
                      "action": (p + (k + 1) * step).astype(np.float32), "task": "push the T"})
    ds.save_episode()
ds.finalize()
print("RESULT", len(ds), ds.num_episodes)
"""


def test_realsim_train_on_a_dataset_lerobot_wrote(tmp_path):
    from launch.cli import main as cli

    root = tmp_path / "lerobot-made"
    proc = subprocess.run([LEROBOT_PYTHON, "-c", _CREATE, str(root)], capture_output=True, text=True, timeout=300,
                          env=OFFLINE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split("RESULT")[1].split() == ["60", "3"]
    reader = DatasetReader(root)
    assert reader.num_episodes == 3 and reader.num_frames == 60
    np.testing.assert_allclose(reader.episode(1)["action"][0], [0.504, 0.05], atol=1e-6)  # episodes share a file
    sets = ["policy.network.down_dims=[32,64]", "policy.network.time_embed_dim=32", "policy.chunking.horizon=8",
            "policy.chunking.n_action_steps=4", "optim.batch_size=8", "schedule.log_every=5"]
    args = ["train", "--no-progress", "--dataset", str(root), "--policy", "flow", "--steps", "10",
            "--out", str(tmp_path / "run")]
    assert cli(args + [x for s in sets for x in ("--set", s)]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last" / "pretrained_model"
    assert json.loads((ckpt / "train_config.json").read_text())["dataset_episodes"] == [0, 1, 2]
