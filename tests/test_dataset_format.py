"""Dataset writer/reader: round trip of every feature, the v3 layout field by field, crash safety, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policies.dataset import (DatasetError, DatasetReader, DatasetSpec, DatasetWriter, check_writable, pusht_features,
                              validate_dataset)

FPS = 10.0
TASK = "push the T onto the target"


def _spec() -> DatasetSpec:
    return DatasetSpec(fps=FPS, features=pusht_features({"top": (32, 48)}), raw_cameras={"cam0": (24, 32)})


def _episode(rng: np.random.Generator, T: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    frames = []
    for t in range(T):
        frames.append({
            "observation.state": rng.normal(size=9), "observation.environment_state": rng.normal(size=19),
            "action": rng.uniform(0.3, 0.7, size=2), "next.reward": rng.uniform(), "next.coverage": rng.uniform(),
            "next.success": t == T - 1, "next.done": t == T - 1, "twin.body_poses": rng.normal(size=14),
            "twin.joint_pos": rng.normal(size=7), "twin.joint_vel": rng.normal(size=7),
            "twin.robot_joint_pos": rng.normal(size=7), "twin.correction_active": bool(t % 2),
            "control.by_operator": t < 2,
        })
    # smooth images (codecs keep them within a few levels): a moving square on a gradient
    yy, xx = np.mgrid[0:32, 0:48]
    top = np.zeros((T, 32, 48, 3), np.uint8)
    for t in range(T):
        top[t, ..., 0] = (xx * 5).astype(np.uint8)
        top[t, ..., 1] = 80
        top[t, ..., 2] = (yy * 7).astype(np.uint8)
        top[t, 8:20, 4 + t:16 + t] = (230, 230, 40)
    raw = np.full((T, 24, 32, 3), 120, np.uint8)
    raw[:, :, :16] = (20, 160, 60)
    return frames, {"observation.images.top": top, "raw/cam0": raw}


def _save(w: DatasetWriter, videos: dict[str, np.ndarray]) -> int:
    """Commit with the video features, and the raw frames of ``raw/<serial>`` keys."""
    return w.save_episode({k: v for k, v in videos.items() if not k.startswith("raw/")},
                          raw={k[4:]: v for k, v in videos.items() if k.startswith("raw/")})


def _write(root: Path, lengths: list[int], seed: int = 0, resume: bool = False) -> list:
    rng = np.random.default_rng(seed)
    w = DatasetWriter(root, _spec(), twin_meta={"twin": {"control_hz": FPS}}, resume=resume, min_free_mb=1)
    eps = []
    for T in lengths:
        frames, videos = _episode(rng, T)
        for f in frames:
            w.add_frame(f, TASK)
        _save(w, videos)
        eps.append((frames, videos))
    return eps


def test_round_trip_every_feature(tmp_path):
    root = tmp_path / "ds"
    eps = _write(root, [12, 7])
    assert validate_dataset(root) == []
    r = DatasetReader(root)
    assert (r.num_episodes, r.num_frames, r.fps) == (2, 19, FPS)
    assert r.tasks == {TASK: 0}
    assert r.twin_meta == {"twin": {"control_hz": FPS}}
    # raw camera frames sit beside LeRobot's features, not among them (its policies take every video feature)
    assert [k for k, f in r.info["features"].items() if f["dtype"] == "video"] == ["observation.images.top"]
    assert r.info["realsim_raw_cameras"]["cam0"] == {"height": 24, "width": 32, "path": "raw/{serial}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"}
    assert (root / "raw" / "cam0" / "chunk-000" / "file-001.mp4").is_file()
    for i, (frames, videos) in enumerate(eps):
        data = r.episode(i)
        for k, f in r.spec.features.items():
            if f.dtype == "video":
                continue
            want = np.stack([np.asarray(fr[k], dtype=f.dtype).reshape(f.shape) for fr in frames])
            assert data[k].dtype == np.dtype(f.dtype), k
            assert data[k].shape == (len(frames), *f.shape), k
            np.testing.assert_array_equal(data[k], want, err_msg=k)
        np.testing.assert_allclose(data["timestamp"], np.arange(len(frames)) / FPS, atol=1e-6)
        np.testing.assert_array_equal(data["episode_index"], i)
        np.testing.assert_array_equal(data["frame_index"], np.arange(len(frames)))
        np.testing.assert_array_equal(data["index"], np.arange(len(frames)) + (0 if i == 0 else 12))
        for key, want in videos.items():
            got, times = r.raw_video(key[4:], i) if key.startswith("raw/") else r.video(key, i)
            assert got.shape == want.shape
            np.testing.assert_allclose(times, np.arange(len(want)) / FPS, atol=1e-6)
            err = got.astype(float) - want.astype(float)
            psnr = 10 * np.log10(255.0**2 / np.mean(err**2))
            assert psnr > 28.0 and np.abs(err).mean() < 5.0, (key, psnr)  # H.264 at crf 18, yuv420p
    # float64 twin state is exact; float32 observation features hold float32 precision
    assert r.episode(0)["twin.body_poses"].dtype == np.float64


def test_layout_and_info_schema_field_by_field(tmp_path):
    root = tmp_path / "ds"
    _write(root, [5, 6, 4])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 15, 1)
    assert info["fps"] == 10 and info["chunks_size"] == 1000 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["observation.state"] == {"dtype": "float32", "shape": [9], "names": [
        "pusher_x", "pusher_y", "joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "joint_6", "joint_7"]}
    assert feats["observation.environment_state"]["shape"] == [19]
    assert feats["action"]["shape"] == [2]
    assert feats["next.success"] == {"dtype": "bool", "shape": [1], "names": None}
    for k in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert feats[k]["shape"] == [1]
    top = feats["observation.images.top"]
    assert top["dtype"] == "video" and top["shape"] == [32, 48, 3] and top["names"] == ["height", "width", "channels"]
    assert top["info"]["video.codec"] == "h264" and top["info"]["video.fps"] == 10 and top["info"]["video.height"] == 32
    for i in range(3):
        assert (root / f"data/chunk-000/file-{i:03d}.parquet").is_file()
        assert (root / f"meta/episodes/chunk-000/file-{i:03d}.parquet").is_file()
        assert (root / f"videos/observation.images.top/chunk-000/file-{i:03d}.mp4").is_file()
    ep = pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet").to_pylist()[0]
    assert ep["episode_index"] == 1 and ep["length"] == 6 and ep["tasks"] == [TASK]
    assert (ep["dataset_from_index"], ep["dataset_to_index"]) == (5, 11)
    assert (ep["data/chunk_index"], ep["data/file_index"]) == (0, 1)
    assert ep["videos/observation.images.top/from_timestamp"] == 0.0
    assert ep["videos/observation.images.top/to_timestamp"] == pytest.approx(0.6)
    assert len(ep["stats/action/mean"]) == 2 and ep["stats/action/count"] == [6]
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0], "task": [TASK]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    t = data.schema.field("observation.state").type
    assert pa.types.is_fixed_size_list(t) and t.list_size == 9 and t.value_type == pa.float32()
    assert data.schema.field("timestamp").type == pa.float32()
    assert data.schema.field("next.success").type == pa.bool_()
    assert b"huggingface" in data.schema.metadata
    stats = json.loads((root / "meta/stats.json").read_text())
    # dataset stats equal the stats of all frames together
    r = DatasetReader(root)
    allx = np.concatenate([r.episode(i)["action"] for i in range(3)]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], allx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], allx.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["min"], allx.min(0), rtol=1e-6)
    assert stats["action"]["count"] == [15]
    assert np.array(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)


def test_validate_reports_broken_datasets(tmp_path):
    root = tmp_path / "ds"
    _write(root, [4, 4])
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] = 9
    del info["features"]["observation.images.top"]["info"]["video.codec"]
    (root / "meta/info.json").write_text(json.dumps(info))
    problems = validate_dataset(root)
    assert any("video.codec" in p for p in problems)
    _write(tmp_path / "ds2", [4, 4])
    (tmp_path / "ds2/videos/observation.images.top/chunk-000/file-001.mp4").unlink()
    assert any("missing videos/observation.images.top" in p for p in validate_dataset(tmp_path / "ds2"))
    info = json.loads((tmp_path / "ds2/meta/info.json").read_text())
    info["total_episodes"] = 3
    (tmp_path / "ds2/meta/info.json").write_text(json.dumps(info))
    assert any("total_episodes 3 != 2" in p for p in validate_dataset(tmp_path / "ds2"))


def test_refuses_existing_dataset_without_resume_and_resumes(tmp_path):
    root = tmp_path / "ds"
    _write(root, [3])
    with pytest.raises(DatasetError, match="--resume"):
        DatasetWriter(root, _spec(), min_free_mb=1)
    _write(root, [4], seed=1, resume=True)
    r = DatasetReader(root)
    assert r.num_episodes == 2 and r.num_frames == 7
    assert validate_dataset(root) == []
    other = DatasetSpec(fps=FPS, features=pusht_features({"top": (32, 48)}))
    with pytest.raises(DatasetError, match="features, raw cameras or fps differ"):
        DatasetWriter(root, other, resume=True, min_free_mb=1)


def test_re_record_drops_the_episode(tmp_path):
    rng = np.random.default_rng(0)
    w = DatasetWriter(tmp_path / "ds", _spec(), min_free_mb=1)
    frames, videos = _episode(rng, 5)
    for f in frames:
        w.add_frame(f, TASK)
    w.clear_episode()
    assert w.episode_frames == 0 and w.num_episodes == 0
    with pytest.raises(ValueError, match="no frames"):
        _save(w, videos)
    with pytest.raises(ValueError, match="missing"):
        w.add_frame({"action": np.zeros(2)}, TASK)


def test_unwritable_and_full_disk_fail_clearly(tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/realsim-dataset")  # not creatable even as root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "ds"
    with pytest.raises(DatasetError, match="cannot write the dataset"):
        check_writable(target, min_free_mb=1)
    with pytest.raises(DatasetError, match="MB free"):
        check_writable(tmp_path / "ok", min_free_mb=1e12)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a dataset"):
        DatasetWriter(tmp_path / "junk", _spec(), min_free_mb=1)


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_dataset_format import _episode, _save, _spec, TASK
    from policies.dataset import DatasetWriter
    w = DatasetWriter({root!r}, _spec(), resume={resume}, min_free_mb=1)
    rng = np.random.default_rng(w.num_episodes)
    for k in range(1000):
        frames, videos = _episode(rng, 6)
        for f in frames:
            w.add_frame(f, TASK)
        _save(w, videos)
        print("saved", w.num_episodes, flush=True)
        frames, _ = _episode(rng, 6)
        for f in frames[:3]:
            w.add_frame(f, TASK)
        print("midway", flush=True)
        time.sleep(30)
""")


def test_kill_9_mid_episode_then_load_and_resume(tmp_path):
    root = tmp_path / "ds"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for resume, expect in ((False, 1), (True, 2)):
        code = _CHILD.format(tests=str(Path(__file__).parent), root=str(root), resume=resume)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
        lines = []
        deadline = time.monotonic() + 60
        while "midway" not in lines and time.monotonic() < deadline:
            lines.append(proc.stdout.readline().strip())
        assert "midway" in lines, lines
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert validate_dataset(root) == []
        r = DatasetReader(root)
        assert r.num_episodes == expect and r.num_frames == 6 * expect


def test_image_and_feature_stats_against_direct_computation():
    from policies.dataset._stats import aggregate_stats, feature_stats, image_stats

    rng = np.random.default_rng(1)
    frames = rng.integers(3, 250, size=(40, 12, 16, 3), dtype=np.uint8)
    s = image_stats(frames, max_samples=40)
    x = frames.reshape(-1, 3) / 255.0
    for name, want in (("mean", x.mean(0)), ("std", x.std(0)), ("min", x.min(0)), ("max", x.max(0))):
        np.testing.assert_allclose(s[name].reshape(3), want, atol=1e-12, err_msg=name)
    assert s["count"].tolist() == [40]
    a, b = rng.normal(size=(7, 3)), rng.normal(2.0, 3.0, size=(19, 3))
    agg = aggregate_stats([feature_stats(a), feature_stats(b)])
    both = np.vstack([a, b])
    np.testing.assert_allclose(agg["mean"], both.mean(0))
    np.testing.assert_allclose(agg["std"], both.std(0))
    assert agg["count"].tolist() == [26]


def test_dataset_cli_info_and_validate(tmp_path, capsys):
    from launch.cli import main as cli

    root = tmp_path / "ds"
    _write(root, [5, 3])
    assert cli(["dataset", "info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["episodes"], info["frames"], info["fps"], info["success_rate"]) == (2, 8, 10.0, 1.0)
    assert info["features"]["observation.images.top"] == {"dtype": "video", "shape": [32, 48, 3]}
    assert cli(["dataset", "validate", str(root)]) == 0
    assert "valid" in capsys.readouterr().out
    (root / "data/chunk-000/file-001.parquet").unlink()
    assert cli(["dataset", "validate", str(root)]) == 1
    assert "missing data/chunk-000/file-001.parquet" in capsys.readouterr().out
    assert cli(["dataset", "info", str(tmp_path / "nothing")]) == 2
    assert "not a dataset" in capsys.readouterr().err
