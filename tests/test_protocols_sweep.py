"""A cluster sweep, one submitit job per model, run under submitit's local executor."""

import pytest
from conftest import make_dataset

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.protocols import bench, sweep


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", counts={"train": 10, "validation": 4, "test": 6})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    from ultrabench_eval.core.registry import TASKS

    monkeypatch.setattr(TASKS, "_populated", False)
    return tmp_path


def test_one_local_job_per_model_gives_the_same_records(toy_task, capsys):
    tmp = toy_task
    argv = [
        "--model",
        "pixels,hog",
        "--tasks",
        "toy",
        "--data",
        str(tmp / "data"),
        "--seeds",
        "2",
        "--fractions",
        "1",
        "--no-progress",
    ]
    code = main(
        [
            "sweep",
            *argv,
            "--executor",
            "local",
            "--log-dir",
            str(tmp / "logs"),
            "--results",
            str(tmp / "swept"),
            "--cache",
            str(tmp / "c1"),
        ]
    )
    assert code == 0
    out = capsys.readouterr()
    assert out.err.count("submitted ") == 2
    assert "| pixels" in out.out and "| hog" in out.out
    assert main(["bench", *argv, "--results", str(tmp / "direct"), "--cache", str(tmp / "c2")]) == 0
    capsys.readouterr()
    from ultrabench_eval.results.record import read_records

    def scores(folder):
        return {(r.model_name, r.task_name): r.scores.per_seed for r in read_records(folder)}

    assert scores(tmp / "swept") == scores(tmp / "direct")
    assert len(list((tmp / "logs").glob("*_result.pkl"))) == 2


def test_bad_sweep_fails_before_submitting(toy_task):
    config = bench.BenchConfig(
        models=["nope"],
        tasks=["toy"],
        data_root=toy_task / "data",
        cache_root=toy_task / "c",
        results_root=toy_task / "r",
    )
    with pytest.raises(UserError, match="unknown model 'nope'"):
        bench.check(config)
    config.models = ["pixels"]
    with pytest.raises(UserError, match="no Slurm here"):
        sweep.submit(config, toy_task / "logs", executor="slurm")
    assert not (toy_task / "logs").exists()


def test_a_sweep_job_knows_the_card_a_hugging_face_dataset_gave(tmp_path, restored_tasks):
    """`--data` registers the dataset's card in the submitting process only: the job gets it
    along, or its registry would not know the task."""
    from hub_datasets import folder_task, save_to_disk

    from ultrabench_eval.core import config

    card = folder_task(config.data_root())
    source = save_to_disk(config.data_root() / card.dataset, card, tmp_path / "ds")
    argv = ["--model", "pixels", "--data", str(source), "--seeds", "1", "--fractions", "1"]
    code = main(
        ["sweep", *argv, "--no-progress", "--executor", "local", "--log-dir", str(tmp_path / "l")]
    )
    assert code == 0
    assert (config.results_root() / "pixels" / "hf-ds" / "us-jepa-2026.json").is_file()
