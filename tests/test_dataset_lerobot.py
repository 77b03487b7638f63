"""LeRobot's own ``LeRobotDataset`` loads a dataset written here.

LeRobot pins a torch (and needs torchvision) that cannot live beside this project's torch, so it runs
from its own environment: ``REALSIM_LEROBOT_PYTHON`` (or ``.venv-lerobot/bin/python`` in the repository)
with ``pip install lerobot``. Skipped when neither exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policies.dataset import DatasetReader

REPO = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = os.environ.get("REALSIM_LEROBOT_PYTHON") or str(REPO / ".venv-lerobot" / "bin" / "python")
pytestmark = pytest.mark.skipif(not Path(LEROBOT_PYTHON).exists(), reason="no Python environment with lerobot")

_LOAD = r"""
import json, sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
ds = LeRobotDataset("local/realsim-test", root=sys.argv[1], video_backend="pyav")  # torchcodec needs system FFmpeg
out = {"len": len(ds), "num_episodes": ds.num_episodes, "fps": ds.fps, "features": sorted(ds.features),
       "camera_keys": ds.meta.camera_keys, "frames": []}
for i in (0, 5, len(ds) - 1):
    item = ds[i]
    f = {k: (v.numpy().tolist() if hasattr(v, "numpy") else v) for k, v in item.items()
         if not k.startswith("observation.images")}
    f["images"] = {k: [list(item[k].shape), float(item[k].float().mean())] for k in ds.meta.camera_keys}
    out["frames"].append(f)
print("RESULT" + json.dumps(out))
"""


def test_lerobot_dataset_loads_what_we_write(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_dataset_format import _write

    root = tmp_path / "ds"
    _write(root, [12, 7])
    proc = subprocess.run([LEROBOT_PYTHON, "-c", _LOAD, str(root)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.split("RESULT", 1)[1])
    r = DatasetReader(root)
    assert (res["len"], res["num_episodes"], res["fps"]) == (19, 2, 10)
    assert res["camera_keys"] == ["observation.images.top"]  # the raw frames are not LeRobot features
    for frame in res["frames"]:
        idx = int(np.ravel(frame["index"])[0])
        ep = int(np.ravel(frame["episode_index"])[0])
        data = r.episode(ep)
        t = idx - (0 if ep == 0 else 12)
        np.testing.assert_allclose(frame["observation.state"], data["observation.state"][t], rtol=1e-6)
        # LeRobot hands float64 columns out as float32 tensors (the parquet keeps float64)
        np.testing.assert_allclose(frame["twin.body_poses"], data["twin.body_poses"][t], rtol=1e-6)
        np.testing.assert_allclose(frame["action"], data["action"][t], rtol=1e-6)
        assert frame["task"] == "push the T onto the target"
        assert frame["images"]["observation.images.top"][0] == [3, 32, 48]  # LeRobot's CHW float images
        top, _ = r.video("observation.images.top", ep)
        assert abs(frame["images"]["observation.images.top"][1] - top[t].mean() / 255.0) < 0.02
