"""`realsim collect --twin-only`, `realsim train` (with its periodic evaluation, --resume and clear
errors) and `realsim demo --policy` end to end, on tiny data."""

from __future__ import annotations

import json

import pytest

from launch.cli import main as cli
from policies.dataset import DatasetReader, validate_dataset

from _policy_data import TINY_POLICY, write_line_dataset


def test_twin_only_collect_writes_labelled_expert_episodes(tmp_path, capsys):
    root = tmp_path / "demos"
    code = cli(["collect", "--twin-only", "--episodes", "2", "--dataset", str(root), "--out", str(tmp_path / "run"),
                "--set", "episode_time_s=1.5"])
    assert code == 0
    assert validate_dataset(root) == []
    reader = DatasetReader(root)
    assert reader.num_episodes == 2 and reader.spec.video_keys == []
    assert all(e["success"] is not None for e in reader.episodes)  # the episode's own label
    ep = reader.episode(0)
    assert len(ep["action"]) == 15 and ep["next.done"][-1] and not ep["next.done"][:-1].any()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["seeds_written"] == [0, 1]
    # --resume continues with the next seeds
    assert cli(["collect", "--twin-only", "--episodes", "3", "--dataset", str(root), "--resume", "--out",
                str(tmp_path / "run2"), "--set", "episode_time_s=1.5"]) == 0
    assert DatasetReader(root).num_episodes == 3
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["seeds_written"] == [2]


def _train(tmp_path, *extra: str) -> int:
    sets = TINY_POLICY + ["eval.seeds=[500,501]", "eval.max_episode_steps=30", "schedule.eval_every=10",
                          "schedule.log_every=5", "schedule.save_every=10", "optim.batch_size=16"]
    args = ["train", "--no-progress", "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    return cli(args + list(extra))


def test_train_evaluates_saves_resumes_and_the_checkpoint_runs_in_the_demo(tmp_path, capsys):
    dataset = write_line_dataset(tmp_path / "lines")
    assert _train(tmp_path, "--dataset", str(dataset), "--policy", "diffusion", "--steps", "20") == 0
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last" / "pretrained_model"
    assert (ckpt / "config.json").is_file() and (ckpt / "model.safetensors").is_file()
    assert (run / "checkpoints" / "000010").is_dir() and (run / "loss.png").stat().st_size > 1000
    assert (run / "train.rrd").is_file()
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    evals = [e for e in log if "success_rate" in e]
    assert [e["step"] for e in evals] == [10, 20] and all(0 <= e["avg_max_coverage"] <= 1 for e in evals)
    train_cfg = json.loads((ckpt / "train_config.json").read_text())
    assert train_cfg["step"] == 20 and train_cfg["dataset_episodes"] == [0, 1]
    # the training curve scores as `realsim evaluate` does (live rules, observation noise): the same figures
    assert cli(["evaluate", "--policy", str(ckpt), "--episodes", "2", "--seed", "500", "--worlds", "2", "--videos", "0",
                "--no-progress", "--out", str(tmp_path / "eval"), "--set", "twin.max_episode_steps=30"]) == 0
    info = json.loads(next((tmp_path / "eval").glob("*/eval_info.json")).read_text())
    assert info["episode_end"] == "live" and info["observation_noise"]["position_m"] > 0
    assert info["aggregated"]["avg_max_coverage"] == pytest.approx(evals[-1]["avg_max_coverage"], abs=1e-9)
    assert info["aggregated"]["pc_success"] == pytest.approx(100 * evals[-1]["success_rate"])
    # a second run into the same folder is refused; --resume continues it to more steps
    assert _train(tmp_path, "--dataset", str(dataset), "--steps", "30") == 2
    assert "--resume" in capsys.readouterr().err
    assert _train(tmp_path, "--resume", "--steps", "30") == 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [5, 10, 15, 20, 25, 30]
    assert json.loads((ckpt / "config.json").read_text())["type"] == "diffusion"
    # the checkpoint drives the twin
    assert cli(["demo", "--policy", str(ckpt), "--episodes", "2", "--seed", "1000", "--out", str(tmp_path / "demo"),
                "--set", "twin.max_episode_steps=5"]) == 0
    result = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert [e["seed"] for e in result["per_episode"]] == [1000, 1001]


@pytest.mark.parametrize("problem", ["no dataset", "empty", "not a checkpoint"])
def test_bad_inputs_are_clear_errors(tmp_path, capsys, problem):
    if problem == "no dataset":
        assert _train(tmp_path, "--dataset", str(tmp_path / "absent")) == 2
        assert "not a dataset" in capsys.readouterr().err
    elif problem == "empty":
        from policies.dataset import DatasetSpec, DatasetWriter, pusht_features

        DatasetWriter(tmp_path / "empty", DatasetSpec(fps=10, features=pusht_features({})))
        assert _train(tmp_path, "--dataset", str(tmp_path / "empty")) == 2
        assert "holds no episodes" in capsys.readouterr().err
    else:
        assert cli(["demo", "--policy", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "d")]) == 2
        assert "no config.json" in capsys.readouterr().err
        # the live jobs refuse it before the simulated workspace starts or anything moves
        assert cli(["deploy", "--policy", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "dep")]) == 2
        assert "no config.json" in capsys.readouterr().err and not (tmp_path / "dep" / "world.log").exists()
        assert cli(["collect", "--policy", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "col"),
                    "--dataset", str(tmp_path / "col-ds"), "--set", "min_free_mb=10"]) == 2
        assert "no config.json" in capsys.readouterr().err and not (tmp_path / "col" / "world.log").exists()


def test_train_refuses_an_unknown_episode_end(tmp_path, capsys):
    dataset = write_line_dataset(tmp_path / "lines")
    assert _train(tmp_path, "--dataset", str(dataset), "--steps", "2", "--set", "eval.episode_end=sometimes") == 2
    assert "eval.episode_end" in capsys.readouterr().err
