"""`hub_task`: a Hugging Face dataset written as an UltraBench-format task folder in the cache: the
split files and `source.json`, the image and mask bytes as the dataset holds them, under their own
paths when those are safe and free, else under `_hf/`; an unchanged local dataset is not loaded
again, a changed one gets a new folder; a failure while writing (an interrupt included) leaves
neither a temporary nor a final folder; a row without an image or a label outside the card's
classes is one line."""

from __future__ import annotations

import errno
import io
import json
import os
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
from conftest import make_dataset
from hub_datasets import records, save_to_disk
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data import dataset as dataset_module
from ultrabench_eval.data.hub import materialise
from ultrabench_eval.data.hub.load import LoadedSource
from ultrabench_eval.data.hub.materialise import hub_task
from ultrabench_eval.data.hub.source import HubSource
from ultrabench_eval.data.task_card import SPLITS, TaskCard

CARD = TaskCard(name="tiny", dataset="tiny", classes=("a", "b"))
SEG = TaskCard(
    name="seg",
    dataset="seg",
    classes=("background", "lesion"),
    kind="segmentation",
    mask_field="lesion_mask",
)
SHA = "0123456789abcdef0123456789abcdef01234567"


def _image(value: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _split(paths, labels=None, **columns) -> dict:
    """Column values: images (distinct bytes per row) under `paths`, labels alternating."""
    images = [
        None if p is False else {"bytes": _image(7 * i + len(str(p))), "path": p}
        for i, p in enumerate(paths)
    ]
    data = {"image": images, **columns}
    if labels is not False:
        data["label"] = labels if labels is not None else [i % 2 for i in range(len(paths))]
    return data


def _dict(splits: dict[str, dict], features: dict | None = None) -> datasets.DatasetDict:
    features = features or {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=["a", "b"]),
    }
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(data, features=datasets.Features(features))
            for name, data in splits.items()
        }
    )


def _plain(count: int = 4) -> dict[str, dict]:
    return {split: _split([f"{split}/{i}.png" for i in range(count)]) for split in SPLITS}


def _card_on(source_dir: Path, card: TaskCard = CARD) -> TaskCard:
    source = HubSource(path=str(source_dir))
    return replace(card, dataset=source.slug, hf=source)


def _saved(tmp_path: Path, splits: dict[str, dict], features=None, name="ds") -> Path:
    _dict(splits, features).save_to_disk(str(tmp_path / name))
    return tmp_path / name


def _hub_card(monkeypatch, loaded: datasets.DatasetDict, card: TaskCard = CARD) -> TaskCard:
    """`card` on hub dataset org/name, whose load gives `loaded` (never the network)."""

    def load_source(source, progress=False):
        return LoadedSource(source, dict(loaded), revision=SHA)

    monkeypatch.setattr(materialise, "load_source", load_source)
    source = HubSource(id="org/name")
    return replace(card, dataset=source.slug, hf=source)


def _written(card: TaskCard, root: Path, split: str) -> list[dict]:
    return json.loads((root / card.dataset / f"{split}.json").read_text())


def _raw(dataset: datasets.Dataset, column: str) -> list:
    return dataset.cast_column(column, datasets.Image(decode=False))[column]


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "hf").rglob("*"))


def test_a_dataset_is_written_as_its_task_folder(tmp_path):
    task = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 4, "test": 4})
    folder = tmp_path / "data" / task.dataset
    source = save_to_disk(folder, task, tmp_path / "ds")
    card = _card_on(source, task)

    folder_card, root, provenance = hub_task(card, tmp_path / "cache")

    assert root.parent == tmp_path / "cache" / "hf" / card.hf.slug
    written = root / card.dataset
    assert sorted(p.name for p in written.glob("*.json")) == [
        "source.json",
        "test.json",
        "train.json",
        "validation.json",
    ]
    for split in SPLITS:
        # the same rows as the folder the dataset was made from: labels, groups, image and scan
        # mask bytes (a saved dataset keeps file names only, and the scan masks share the
        # images' names: they get generated ones)
        original, rows = records(folder, split), _written(card, root, split)
        assert len(rows) == len(original)
        for row, record in zip(rows, original, strict=True):
            assert set(row) == {"image", "label", "patient", "scan_mask"}
            assert (row["label"], row["patient"]) == (record["label"], record["patient"])
            assert row["image"] == Path(record["image"]).name
            assert row["scan_mask"].startswith(f"_hf/scan_mask/{split}/")
            for key in ("image", "scan_mask"):
                assert (written / row[key]).read_bytes() == (folder / record[key]).read_bytes()
    assert provenance == json.loads((written / "source.json").read_text())
    assert provenance["path"] == str(source) and provenance["id"] is None
    assert provenance["splits"] == {s: s for s in SPLITS} and provenance["validation"] is None
    assert provenance["columns"] == {
        "image": "image",
        "label": "label",
        "group": "patient",
        "mask": None,
        "scan_mask": "scan_mask",
    }
    assert set(provenance["fingerprint"]) == set(SPLITS)
    assert folder_card == card
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp folder
    opened = dataset_module.open_dataset(folder_card, root, overlap="refuse")
    assert {s: len(opened.splits[s]) for s in SPLITS} == {"train": 6, "validation": 4, "test": 4}


def test_a_group_column_the_card_does_not_name_is_recorded_as_group(tmp_path):
    splits = {s: {**_split(["x.png", "y.png"]), "case_id": [f"{s}1", f"{s}2"]} for s in SPLITS}
    features = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=["a", "b"]),
        "case_id": datasets.Value("string"),
    }
    card = _card_on(_saved(tmp_path, splits, features))
    folder_card, root, _ = hub_task(card, tmp_path / "cache")
    assert folder_card.group_field == "group" and card.group_field is None
    assert [r["group"] for r in _written(card, root, "test")] == ["test1", "test2"]


def test_a_missing_validation_split_is_carved_from_train(tmp_path):
    splits = {
        "train": {
            **_split([f"{i}.png" for i in range(20)]),
            "patient": [f"p{i // 2}" for i in range(20)],
        },
        "test": {**_split(["t0.png", "t1.png"]), "patient": ["q0", "q1"]},
    }
    features = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=["a", "b"]),
        "patient": datasets.Value("string"),
    }
    card = replace(_card_on(_saved(tmp_path, splits, features)), group_field="patient")
    _, root, provenance = hub_task(card, tmp_path / "cache")
    train, validation = _written(card, root, "train"), _written(card, root, "validation")
    assert len(train) + len(validation) == 20 and validation
    assert provenance["validation"] == {
        "from": "train",
        "fraction": 0.1,
        "seed": 0,
        "stratified": True,
        "grouped_by": "patient",
        "images": len(validation),
    }
    assert provenance["splits"]["validation"] == "carved from train"
    assert not {r["patient"] for r in train} & {r["patient"] for r in validation}
    assert {r["image"] for r in train} | {r["image"] for r in validation} == {
        f"{i}.png" for i in range(20)
    }


def test_unsafe_or_clashing_paths_get_generated_names(tmp_path, monkeypatch):
    train_paths = [
        "/abs/x.png",  # absolute
        "../x.png",  # outside the folder
        "ok/y.png",  # kept
        "_hf/image/train/000000.png",  # the generated folder is ours
        "x.txt",  # not an image name: the suffix is sniffed from the bytes
        "ok/y.png",  # the same name twice
        None,  # no name at all
        "train.json",  # a split file's name
    ]
    splits = {
        "train": _split(train_paths),
        "validation": _split(["v.png", "ok/y.png"]),  # a name train already has
        "test": _split(["ok/y.png", "z.png"]),
    }
    splits["train"]["image"].append({"bytes": _image(250, "JPEG"), "path": None})
    splits["train"]["label"].append(0)
    # a dataset saved to disk keeps file names only: paths as given come from a loaded one
    loaded = _dict(splits)
    card = _hub_card(monkeypatch, loaded)

    _, root, _ = hub_task(card, tmp_path / "cache")

    names = {split: [r["image"] for r in _written(card, root, split)] for split in SPLITS}
    assert names == {
        "train": [
            "_hf/image/train/000000.png",
            "_hf/image/train/000001.png",
            "ok/y.png",
            "_hf/image/train/000003.png",
            "_hf/image/train/000004.png",
            "_hf/image/train/000005.png",
            "_hf/image/train/000006.png",
            "_hf/image/train/000007.png",
            "_hf/image/train/000008.jpg",
        ],
        "validation": ["v.png", "_hf/image/validation/000001.png"],
        "test": ["_hf/image/test/000000.png", "z.png"],
    }
    folder = root / card.dataset
    for split in SPLITS:
        given = _raw(loaded[split], "image")
        for name, value in zip(names[split], given, strict=True):
            assert (folder / name).read_bytes() == value["bytes"]
    assert not (root / "x.png").exists() and not (root.parent / "x.png").exists()
    inside = [p for p in root.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in inside)


def test_files_named_by_path_are_read_and_copied(tmp_path, monkeypatch):
    """An imagefolder's rows name their files (absolute paths, no bytes)."""
    files = []
    for i in range(4):
        files.append(tmp_path / "imagefolder" / "train" / ("a" if i % 2 == 0 else "b") / f"{i}.png")
        files[-1].parent.mkdir(parents=True, exist_ok=True)
        files[-1].write_bytes(_image(30 * i))
    splits = {s: _split([str(f) for f in files]) for s in ("train", "test")}
    splits["validation"] = _split(["v0.png", "v1.png"])
    card = _hub_card(monkeypatch, _dict(splits))
    _, root, _ = hub_task(card, tmp_path / "cache")
    for split in ("train", "test"):
        rows = _written(card, root, split)
        assert [r["image"] for r in rows] == [f"_hf/image/{split}/{i:06d}.png" for i in range(4)]
        for row, file in zip(rows, files, strict=True):
            assert (root / card.dataset / row["image"]).read_bytes() == file.read_bytes()


def test_a_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    splits = _plain()
    splits["train"]["image"][1] = {"bytes": None, "path": str(tmp_path / "gone.png")}
    card = _hub_card(monkeypatch, _dict(splits))
    with pytest.raises(UserError) as exc:
        hub_task(card, tmp_path / "cache")
    text = str(exc.value)
    assert "\n" not in text and text.startswith("train row 1: cannot read image file")
    assert _leftovers(tmp_path / "cache") == [card.hf.slug]


def test_an_unchanged_local_dataset_is_not_loaded_again(tmp_path, monkeypatch):
    card = _card_on(_saved(tmp_path, _plain()))
    first = hub_task(card, tmp_path / "cache")

    def no_load(*args, **kwargs):
        raise AssertionError("loaded again")

    monkeypatch.setattr(materialise, "load_source", no_load)
    monkeypatch.setattr(materialise, "_write", no_load)
    second = hub_task(card, tmp_path / "cache")
    assert second == first


@pytest.mark.parametrize("change", ["touch", "rewrite", "add"])
def test_a_changed_local_dataset_gets_a_new_folder(tmp_path, change):
    source = _saved(tmp_path, _plain())
    card = _card_on(source)
    _, first, _ = hub_task(card, tmp_path / "cache")
    state = source / "train" / "state.json"
    stat = state.stat()
    if change == "touch":
        os.utime(state, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    elif change == "rewrite":
        _dict(_plain(5)).save_to_disk(str(source))
    else:
        (source / "README.md").write_text("---\nlicense: mit\n---\n")
    _, second, provenance = hub_task(card, tmp_path / "cache")
    assert second != first and second.parent == first.parent
    assert (first / card.dataset / "source.json").is_file()  # the old folder is not touched
    assert (second / card.dataset / "source.json").is_file()
    if change == "rewrite":
        assert len(_written(card, second, "train")) == 5
    if change == "add":
        assert provenance["license"] == "mit"


def test_another_card_on_the_same_dataset_gets_its_own_folder(tmp_path):
    card = _card_on(_saved(tmp_path, _plain()))
    _, first, _ = hub_task(card, tmp_path / "cache")
    _, second, _ = hub_task(replace(card, classes=("b", "a")), tmp_path / "cache")
    assert first != second
    assert [r["label"] for r in _written(card, second, "train")] == [1, 0, 1, 0]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("boom"), UserError("bad")])
def test_a_failure_while_writing_leaves_no_folder(tmp_path, monkeypatch, error):
    card = _card_on(_saved(tmp_path, _plain()))
    write = materialise._FolderWriter._write_file
    calls = []

    def failing(self, *args):
        calls.append(args)
        if len(calls) == 6:  # in the middle of the second split
            raise error
        return write(self, *args)

    monkeypatch.setattr(materialise._FolderWriter, "_write_file", failing)
    with pytest.raises(type(error)):
        hub_task(card, tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == [card.hf.slug]  # nothing below the source's folder

    monkeypatch.setattr(materialise._FolderWriter, "_write_file", write)
    _, root, _ = hub_task(card, tmp_path / "cache")  # and the next run writes it whole
    assert len(_written(card, root, "test")) == 4


def test_a_full_disk_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch):
    card = _card_on(_saved(tmp_path, _plain()))

    def full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(materialise._FolderWriter, "_write_file", full)
    with pytest.raises(UserError) as exc:
        hub_task(card, tmp_path / "cache")
    text = str(exc.value)
    assert "\n" not in text and "No space left on device" in text and "--cache" in text
    assert _leftovers(tmp_path / "cache") == [card.hf.slug]


def test_a_segmentation_dataset_writes_its_masks(tmp_path):
    count = 12
    masks = [{"bytes": _image(i % 2), "path": f"{i}.png"} for i in range(count)]
    splits = {
        # the image and the mask of a row share a file name, as they often do
        "train": {**_split([f"{i}.png" for i in range(count)], labels=False), "mask": masks},
        "test": {
            **_split(["t.png"], labels=False),
            "mask": [{"bytes": _image(1), "path": "m.png"}],
        },
    }
    features = {"image": datasets.Image(), "mask": datasets.Image()}
    source = _saved(tmp_path, splits, features)
    card = _card_on(source, SEG)

    folder_card, root, provenance = hub_task(card, tmp_path / "cache")

    assert provenance["columns"]["mask"] == "mask" and provenance["columns"]["label"] is None
    assert provenance["validation"]["stratified"] is False
    assert provenance["validation"]["grouped_by"] is None
    train, validation = _written(card, root, "train"), _written(card, root, "validation")
    assert len(train) + len(validation) == count and len(validation) >= 1
    folder = root / card.dataset
    loaded = datasets.load_from_disk(str(source))
    given = dict(
        zip(
            (v["path"] for v in _raw(loaded["train"], "image")),
            _raw(loaded["train"], "mask"),
            strict=True,
        )
    )
    for record in train + validation:
        assert set(record) == {"image", "label", "lesion_mask"} and record["label"] == 0
        assert record["lesion_mask"] != record["image"]
        assert record["lesion_mask"].startswith("_hf/mask/")
        assert (folder / record["lesion_mask"]).read_bytes() == given[record["image"]]["bytes"]
    assert _written(card, root, "test") == [{"image": "t.png", "label": 0, "lesion_mask": "m.png"}]
    opened = dataset_module.open_dataset(folder_card, root)
    assert len(opened.splits["validation"]) == len(validation)


def test_a_row_without_an_image_is_one_line(tmp_path):
    splits = _plain()
    splits["test"]["image"][2] = None
    card = _card_on(_saved(tmp_path, splits))
    with pytest.raises(UserError) as exc:
        hub_task(card, tmp_path / "cache")
    text = str(exc.value)
    assert "\n" not in text
    assert text == "test row 2 of the dataset has no image in column 'image' (every row needs one)"
    assert _leftovers(tmp_path / "cache") == [card.hf.slug]


def test_labels_outside_the_cards_classes_are_one_line(tmp_path):
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "cyst"])}
    card = _card_on(_saved(tmp_path, _plain(), features))
    with pytest.raises(UserError) as exc:
        hub_task(card, tmp_path / "cache")
    text = str(exc.value)
    assert "\n" not in text and "outside the card's classes (a, b)" in text
    assert "row 1: 'cyst'" in text
    assert not (tmp_path / "cache" / "hf").exists() or _leftovers(tmp_path / "cache") == [
        card.hf.slug
    ]


def test_a_hub_dataset_is_written_once_per_commit(tmp_path, monkeypatch):
    loads = []

    def load_source(source, progress=False):
        loads.append(source)
        splits = dict(_dict(_plain()))
        return LoadedSource(source, splits, revision=commits[-1], license="cc-by-4.0")

    commits = [SHA]
    monkeypatch.setattr(materialise, "load_source", load_source)
    source = HubSource(id="org/thyroid-us", revision="main")
    card = replace(CARD, dataset=source.slug, hf=source)
    _, first, provenance = hub_task(card, tmp_path / "cache")
    assert provenance["revision"] == SHA and provenance["id"] == "org/thyroid-us"
    assert provenance["license"] == "cc-by-4.0" and provenance["dataset"] == source.label
    assert first.parent == tmp_path / "cache" / "hf" / "org--thyroid-us"

    write = materialise._write
    monkeypatch.setattr(materialise, "_write", lambda *a: pytest.fail("written again"))
    assert hub_task(card, tmp_path / "cache")[1] == first
    assert len(loads) == 2  # the hub is asked for the commit each time

    monkeypatch.setattr(materialise, "_write", write)
    commits.append("f" * 40)  # the branch moved
    _, moved, provenance = hub_task(card, tmp_path / "cache")
    assert moved != first and provenance["revision"] == "f" * 40


def test_a_card_without_a_source_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="no Hugging Face source"):
        hub_task(CARD, tmp_path / "cache")
