"""The command line: listings, the bench, and user errors as one line with exit code 2."""

import json
import os
import subprocess
import sys

import pytest
from conftest import card_folder, make_dataset

from ultrabench_eval.cli.parser import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_metadata(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0
    for name in ("pixels", "hog", "random-vit-s", "timm:<model_name>"):
        assert f"| {name}" in out
    code, out, _ = _run(capsys, "models", "--format", "json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["random-vit-s"]["params"] == 22050664
    assert rows["hog"]["license"] == "MIT"


def test_tasks_lists_the_generated_suite(capsys):
    code, out, _ = _run(capsys, "tasks")
    assert code == 0
    assert "synth-lesion" in out and "3: none, cyst, solid" in out and "180/44/76" in out


def test_probes_and_corruptions(capsys):
    assert "linear" in _run(capsys, "probes")[1]
    assert "gaussian-noise" in _run(capsys, "corruptions")[1]


def test_bench_on_a_card_from_the_environment(capsys, tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", counts={"train": 12, "validation": 6, "test": 8})
    card_folder(tmp_path / "cards", card.name, card.dataset, monkeypatch)
    code, out, err = _run(
        capsys,
        "bench",
        "--model",
        "pixels",
        "--tasks",
        "toy",
        "--data",
        str(tmp_path / "data"),
        "--seeds",
        "2",
        "--fractions",
        "100,50",
        "--image-size",
        "32",
        "--no-progress",
        "--results",
        str(tmp_path / "res"),
    )
    assert code == 0, err
    # the default probe is the published protocol
    assert "### us-jepa-2026:" in out and "| pixels" in out and "### us-jepa-2026@50%:" in out
    assert (tmp_path / "res" / "leaderboard.md").read_text() == out
    code, again, _ = _run(capsys, "leaderboard", "--results", str(tmp_path / "res"))
    assert code == 0 and again == out


def test_fewshot_table_has_a_row_per_budget(capsys, tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", counts={"train": 16, "validation": 6, "test": 8})
    card_folder(tmp_path / "cards", card.name, card.dataset, monkeypatch)
    common = [
        "--model",
        "pixels",
        "--tasks",
        "toy",
        "--data",
        str(tmp_path / "data"),
        "--seeds",
        "2",
        "--no-progress",
        "--results",
        str(tmp_path / "res"),
    ]
    code, out, err = _run(capsys, "fewshot", *common, "--probe", "knn", "--shots", "1,3")
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0]
        == "### knn, pixels: test macro-F1 (x100) by training labels, mean ± std over seeds"
    )
    assert [line.split("|")[1].strip() for line in lines[4:6]] == ["1-shot", "3-shot"]
    code, out, err = _run(capsys, "fewshot", *common, "--probe", "linear")
    assert code == 0, err
    rows = [line.split("|")[1].strip() for line in out.splitlines()[4:9]]
    assert rows == ["1 %", "5 %", "10 %", "50 %", "100 %"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--model", "nope", "--tasks", "synth-view"], "unknown model 'nope'"),
        (["bench", "--model", "pixels", "--tasks", "nope"], "unknown task 'nope'"),
        (
            ["bench", "--model", "pixels", "--tasks", "synth-view", "--device", "cuda:0"],
            "no CUDA GPU",
        ),
        (["leaderboard", "--results", "/nonexistent/ubench"], "results folder not found"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, argv, message):
    from ultrabench_eval.data.synth import write_task

    write_task("synth-view", tmp_path, num_images=12, image_size=32)
    if argv[0] == "bench":
        argv = [*argv, "--data", str(tmp_path)]
    if "--device" in argv and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("ubench ")


def test_missing_dataset_folder_says_how_to_fix(capsys, tmp_path, monkeypatch):
    card_folder(tmp_path / "cards", "real", "real_v1", monkeypatch)
    code, _, err = _run(
        capsys,
        "bench",
        "--model",
        "pixels",
        "--tasks",
        "real",
        "--data",
        str(tmp_path / "empty"),
        "--no-progress",
    )
    assert code == 2
    assert "dataset folder for task 'real' not found" in err and "--data / UBENCH_DATA" in err


def test_unreadable_image_exits_2_without_traceback_or_results(tmp_path):
    card = make_dataset(tmp_path / "data")
    (tmp_path / "data" / card.dataset / "images" / "test_001.png").write_bytes(b"broken")
    cards = card_folder(tmp_path / "cards", card.name, card.dataset)
    env = {
        **os.environ,
        "UBENCH_TASKS": str(cards),
        "UBENCH_RESULTS": str(tmp_path / "res"),
        "UBENCH_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ultrabench_eval",
            "bench",
            "--model",
            "pixels",
            "--tasks",
            "toy",
            "--data",
            str(tmp_path / "data"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if "cannot decode image" in line
    ]
    assert "test_001.png" in done.stderr
    assert not (tmp_path / "res").exists()


def test_bad_flag_is_one_line_and_exit_2():
    done = subprocess.run(
        [sys.executable, "-m", "ultrabench_eval", "bench", "--frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unrecognized arguments: --frobnicate" in done.stderr


def _toy_bench_argv(tmp_path, monkeypatch, *extra):
    card = make_dataset(tmp_path / "data", counts={"train": 8, "validation": 4, "test": 4})
    card_folder(tmp_path / "cards", card.name, card.dataset, monkeypatch)
    return [
        "bench",
        "--model",
        "pixels",
        "--tasks",
        "toy",
        "--data",
        str(tmp_path / "data"),
        "--cache",
        str(tmp_path / "cache"),
        "--results",
        str(tmp_path / "res"),
        "--image-size",
        "32",
        "--no-progress",
        *extra,
    ]


def test_bad_probe_option_fails_before_any_feature_extraction(capsys, tmp_path, monkeypatch):
    argv = _toy_bench_argv(tmp_path, monkeypatch, "--probe-option", "batch_size=0")
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "ubench bench: error: probe 'us-jepa-2026': batch_size must be at least 1"
    )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--image-size", "4"], "--image-size must be at least 8, got 4"),
        (["--workers", "-1"], "--workers must be at least 0, got -1"),
        (["--device", "gpu"], "--device is not valid, got 'gpu' (use auto, cpu, cuda or cuda:N)"),
        (["--probe-option", "nope=1"], "probe 'us-jepa-2026' does not take these options"),
        (["--probe-option", "lr=[unclosed"], "is not a YAML value"),
    ],
)
def test_bad_settings_are_one_line_before_any_work(capsys, tmp_path, monkeypatch, extra, message):
    code, _, err = _run(capsys, *_toy_bench_argv(tmp_path, monkeypatch, *extra))
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--splits", "train,val"], "--splits[1] must be 'train', 'validation' or 'test'"),
        (["--device", "cuda:x"], "--device is not valid"),
    ],
)
def test_bad_extract_settings_are_one_line(capsys, tmp_path, extra, message):
    argv = ["extract", "--model", "pixels", "--tasks", "synth-view", "--cache", str(tmp_path)]
    code, _, err = _run(capsys, *argv, *extra)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert err.startswith("ubench extract: error:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (
            "name: bad\ndataset: bad_v1\nclasses: [a, b]\nsplit_sizes: {train: x}\n",
            "split_sizes.train must be a whole number, got 'x' (images per split",
        ),
        (
            "name: bad\ndataset: bad_v1\nclasses: 3\n",
            "classes must be a list, got 3 (list at least two class names",
        ),
        ("dataset: bad_v1\nclasses: [a, b]\n", "missing required field(s) name"),
        ("name: bad\ndataset: bad_v1\nclasses: [a, b]\nmetric: auc\n", "metric must be"),
    ],
)
def test_a_bad_task_card_is_one_line_naming_the_file_and_field(
    capsys, tmp_path, monkeypatch, card, message
):
    from ultrabench_eval.core.registry import TASKS

    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "bad.yaml").write_text(card)
    monkeypatch.setenv("UBENCH_TASKS", str(folder))
    monkeypatch.setattr(TASKS, "_entries", {})
    monkeypatch.setattr(TASKS, "_populated", False)
    code, _, err = _run(capsys, "tasks")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"ubench tasks: error: {folder / 'bad.yaml'}: {message}")
