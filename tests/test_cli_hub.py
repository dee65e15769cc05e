"""`--data` naming a Hugging Face dataset, and `ubench tasks add`: a save_to_disk folder, parquet
files and an imagefolder score as the same images do as a folder task; an export loads back as
the same task, byte for byte in the image and label stores; bad datasets are one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from hub_datasets import (
    dataset_dict,
    folder_task,
    imagefolder,
    parquet_folder,
    save_to_disk,
)

from ultrabench_eval.cli import main
from ultrabench_eval.core import config

# hog scores the toy task well short of 100: its predictions tell the runs apart
BENCH = ["bench", "--model", "hog", "--seeds", "2", "--fractions", "1", "--no-progress"]


def _scores(task: str) -> dict:
    """What a run scored: per seed, on validation, and each test prediction (image names may
    differ: a save_to_disk dataset keeps file names, not folders)."""
    path = config.results_root() / "hog" / task / "us-jepa-2026.json"
    record = json.loads(path.read_text())
    scores, test = record["scores"], record["test"]
    return {
        "per_seed": scores["per_seed"],
        "val_per_seed": scores["val_per_seed"],
        "labels": test["labels"],
        "predictions": test["predictions_per_seed"],
    }


def _bench(*flags: str) -> None:
    assert main([*BENCH, *flags]) == 0


def _one_line_error(capsys, *argv: str) -> str:
    capsys.readouterr()  # what the test's own set-up printed
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("ubench")]
    assert len(errors) == 1 and "Traceback" not in err and err.endswith(errors[0])
    return errors[0]


@pytest.mark.parametrize("kind", ["save_to_disk", "parquet"])
def test_a_dataset_scores_as_its_folder_task(tmp_path, restored_tasks, kind, capsys):
    card = folder_task(config.data_root())
    folder = config.data_root() / card.dataset
    _bench("--tasks", card.name)
    build = save_to_disk if kind == "save_to_disk" else parquet_folder
    source = build(folder, card, tmp_path / kind)

    _bench("--data", str(source))

    assert _scores(f"hf-{kind}") == _scores(card.name)
    record = json.loads(
        (config.results_root() / "hog" / f"hf-{kind}" / "us-jepa-2026.json").read_text()
    )
    provenance = record["task"]["source"]
    assert provenance["path"] == str(source.resolve())
    assert set(provenance["fingerprint"]) == {"train", "validation", "test"}
    assert provenance["columns"]["group"] == "patient"
    assert "hf-" + kind in capsys.readouterr().err


def test_an_imagefolder_scores_as_its_folder_task(tmp_path, restored_tasks):
    card = folder_task(config.data_root(), with_masks=False)
    source = imagefolder(config.data_root() / card.dataset, card, tmp_path / "imagefolder")
    _bench("--tasks", card.name)
    _bench("--data", str(source))
    assert _scores("hf-imagefolder") == _scores(card.name)


def test_a_missing_validation_split_is_carved_and_recorded(tmp_path, restored_tasks):
    card = folder_task(config.data_root(), counts={"train": 30, "validation": 2, "test": 8})
    source = save_to_disk(
        config.data_root() / card.dataset, card, tmp_path / "ds", splits=("train", "test")
    )
    _bench("--data", str(source))
    record = json.loads((config.results_root() / "hog" / "hf-ds" / "us-jepa-2026.json").read_text())
    carved = record["task"]["source"]["validation"]
    assert carved["seed"] == 0 and carved["fraction"] == 0.1 and carved["grouped_by"] == "patient"
    sizes = record["task"]["split_sizes"]
    assert sizes["train"] + sizes["validation"] == 30 and sizes["validation"] == carved["images"]


def _store_bytes(dataset: str) -> dict[str, bytes]:
    root = config.cache_root() / "images" / dataset
    return {
        f"{store.name}/{name}": (store / name).read_bytes()
        for store in sorted(root.iterdir())
        for name in ("images.u8", "masks.u8", "labels.u8", "scan.u8")
        if (store / name).is_file()
    }


def test_export_then_load_is_the_same_task_byte_for_byte(tmp_path, restored_tasks):
    card = folder_task(config.data_root())
    _bench("--tasks", card.name)
    assert main(["export", card.name, "--out", str(tmp_path / "exported")]) == 0
    _bench("--data", str(tmp_path / "exported"))  # the task the folder carries: same name

    record = json.loads(
        (config.results_root() / "hog" / card.name / "us-jepa-2026.json").read_text()
    )
    assert record["task"]["source"]["path"] == str((tmp_path / "exported").resolve())
    stores = sorted(p.name for p in (config.cache_root() / "images").iterdir())
    assert len(stores) == 2
    original, loaded = (_store_bytes(name) for name in stores)
    assert original.keys() == loaded.keys() and original
    assert all(original[k] == loaded[k] for k in original)


def test_a_segmentation_export_loads_back_with_the_same_label_masks(tmp_path, restored_tasks):
    assert main(["synth", "--tasks", "synth-lesion-seg", "--num-images", "24"]) == 0
    assert main(["export", "synth-lesion-seg", "--out", str(tmp_path / "seg")]) == 0
    # the label store a run builds, from the folder and from the export
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.dataset import open_dataset
    from ultrabench_eval.data.hub.source import HubSource
    from ultrabench_eval.data.hub.tasks import attach
    from ultrabench_eval.data.label_store import open_label_store

    folder = open_dataset(TASKS.get("synth-lesion-seg"), config.data_root())
    card = attach(TASKS.get("synth-lesion-seg"), HubSource(path=str(tmp_path / "seg")))
    loaded = open_dataset(card, config.data_root(), digest_cache=config.cache_root())
    for split in ("train", "test"):
        a = open_label_store(folder.splits[split], folder.card, config.cache_root())
        b = open_label_store(loaded.splits[split], loaded.card, config.cache_root())
        assert a.root != b.root
        assert np.array_equal(np.asarray(a.labels), np.asarray(b.labels))
        assert np.array_equal(np.asarray(a.valid), np.asarray(b.valid))


def test_tasks_add_writes_a_card_that_checks_and_runs(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    source = save_to_disk(config.data_root() / card.dataset, card, tmp_path / "thyroid")
    cards = tmp_path / "cards"
    assert main(["tasks", "add", "thyroid", "--hf", str(source), "--cards", str(cards)]) == 0
    out = capsys.readouterr().out
    assert "classes: a, b; train/validation/test: 12/6/8" in out
    text = (cards / "thyroid.yaml").read_text()
    assert "image_column: image" in text and "label_column: label" in text

    os.environ[config.TASKS_ENV] = str(cards)  # the conftest fixture removes it again
    restored_tasks._populated = False
    assert main(["tasks", "check", "thyroid"]) == 0
    _bench("--tasks", "thyroid")
    assert _scores("thyroid") != {}
    assert _one_line_error(
        capsys, "tasks", "add", "thyroid", "--hf", str(source), "--cards", str(cards)
    ).endswith("pick another name, or pass --overwrite to write a card that replaces it")


def test_a_dataset_without_a_label_column_is_one_line(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    ds = dataset_dict(config.data_root() / card.dataset, card).remove_columns("label")
    ds.save_to_disk(str(tmp_path / "nolabel"))
    err = _one_line_error(capsys, *BENCH, "--data", str(tmp_path / "nolabel"))
    assert "has no label column" in err and "--label-column" in err


def test_a_non_image_column_named_as_the_image_is_one_line(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    source = save_to_disk(config.data_root() / card.dataset, card, tmp_path / "ds")
    err = _one_line_error(capsys, *BENCH, "--data", str(source), "--image-column", "patient")
    assert "column 'patient' holds string, not images" in err


def test_labels_outside_the_cards_classes_are_one_line(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    ds = dataset_dict(config.data_root() / card.dataset, card)
    ds = ds.cast_column("label", datasets.ClassLabel(names=["a", "cyst"]))
    ds.save_to_disk(str(tmp_path / "other"))
    err = _one_line_error(capsys, *BENCH, "--tasks", card.name, "--data", str(tmp_path / "other"))
    assert "outside the card's classes (a, b)" in err and "'cyst'" in err


def test_column_flags_without_a_dataset_are_one_line(capsys):
    err = _one_line_error(capsys, *BENCH, "--label-column", "label")
    assert "apply to a Hugging Face dataset given with --data" in err


def test_an_unreachable_hub_is_one_line(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "ultrabench_eval", *BENCH, "--data", "hf://org/thyroid-us"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("ubench")] == lines[-1:]
    assert "cannot reach the Hugging Face hub for hf://org/thyroid-us" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (Path(os.environ["UBENCH_CACHE"]) / "hf").exists()


def test_a_hub_dataset_is_loaded_at_its_commit_and_the_record_names_both(
    tmp_path, restored_tasks, monkeypatch
):
    """The hub itself is not reachable here: its two answers (the repository's info, then the
    dataset) are stood in for; everything after them is the real path."""
    import types

    import huggingface_hub

    card = folder_task(config.data_root())
    local = dataset_dict(config.data_root() / card.dataset, card)
    sha = "0123456789abcdef0123456789abcdef01234567"
    asked = {}

    def dataset_info(self, repo_id, revision=None, **kwargs):
        asked.setdefault("info", []).append((repo_id, revision))
        return types.SimpleNamespace(
            sha=sha,
            card_data=types.SimpleNamespace(license="cc-by-4.0"),
            siblings=[types.SimpleNamespace(rfilename="data/train-00000-of-00001.parquet")],
        )

    def load_dataset(path, name=None, revision=None, **kwargs):
        asked["load"] = (path, revision)
        return local

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    _bench("--data", "hf://org/toy-us@main")

    # the branch is resolved once; the card and its data then name the commit
    assert asked["info"][0] == ("org/toy-us", "main")
    assert set(asked["info"][1:]) <= {("org/toy-us", sha)}
    assert asked["load"] == ("org/toy-us", sha)
    record = json.loads(
        (config.results_root() / "hog" / "hf-org--toy-us" / "us-jepa-2026.json").read_text()
    )
    source = record["task"]["source"]
    assert (source["id"], source["revision"], source["license"]) == ("org/toy-us", sha, "cc-by-4.0")
    assert source["dataset"] == f"hf://org/toy-us@{sha}"


def test_a_class_missing_from_the_datasets_test_split_names_that_split(
    tmp_path, restored_tasks, capsys
):
    card = folder_task(config.data_root())
    ds = dataset_dict(config.data_root() / card.dataset, card)
    ds["test"] = ds["test"].filter(lambda row: row["label"] == 0)
    ds.save_to_disk(str(tmp_path / "onlya"))
    err = _one_line_error(capsys, *BENCH, "--data", str(tmp_path / "onlya"))
    assert "split 'test' (test) has no example of class(es) b" in err
    assert "/hf/" not in err  # the dataset's split, not the cache's copy


def test_a_cards_group_field_the_dataset_lacks_is_one_line(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    ds = dataset_dict(config.data_root() / card.dataset, card).remove_columns("patient")
    ds.save_to_disk(str(tmp_path / "nogroups"))
    err = _one_line_error(
        capsys, *BENCH, "--tasks", card.name, "--data", str(tmp_path / "nogroups")
    )
    assert "has no column 'patient' (the card's group_field" in err and "--group-column" in err


def test_commands_on_one_task_take_the_datasets_own_task(tmp_path, restored_tasks, capsys):
    """`extract` without --tasks, `tasks check hf-<name> DIR` and `export hf-<name> --data DIR`
    work on the task a dataset gives; another unknown name is one line."""
    card = folder_task(config.data_root())
    source = save_to_disk(config.data_root() / card.dataset, card, tmp_path / "ds")
    assert main(["extract", "--model", "pixels", "--data", str(source), "--no-progress"]) == 0
    assert main(["tasks", "check", "hf-ds", str(source)]) == 0
    assert main(["export", "hf-ds", "--data", str(source), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "ubench-task.yaml").is_file()
    err = _one_line_error(capsys, "tasks", "check", "hf-other", str(source))
    assert "the dataset" in err and "gives task hf-ds" in err


def test_tasks_add_refuses_what_cannot_be_a_card(tmp_path, restored_tasks, capsys):
    card = folder_task(config.data_root())
    source = str(save_to_disk(config.data_root() / card.dataset, card, tmp_path / "ds"))
    (tmp_path / "file").write_text("")
    cases = {
        ("a b", source, str(tmp_path)): "is not a card name",
        ("toy", source, str(tmp_path)): "task toy exists",
        ("new", str(tmp_path / "nope"), str(tmp_path)): "no such file or folder",
        ("new", source, str(tmp_path / "file" / "cards")): "card folder",
    }
    for (name, hf, cards), expected in cases.items():
        err = _one_line_error(capsys, "tasks", "add", name, "--hf", hf, "--cards", cards)
        assert expected in err
