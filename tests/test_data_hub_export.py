"""`export_task`: a prepared task as a Hugging Face dataset folder that `datasets` loads back
with the same features, rows, bytes and paths; written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from conftest import make_dataset, write_png

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub import export as hub_export
from ultrabench_eval.data.hub.export import export_task, hub_license
from ultrabench_eval.data.task_card import SPLITS, TaskCard


def _export(tmp_path: Path, card: TaskCard, out: Path | None = None, **kwargs):
    out = out or tmp_path / "export" / card.name
    summary = export_task(
        card, tmp_path / "data", out, cache_root=tmp_path / "cache", log=lambda _: None, **kwargs
    )
    return out, summary


def _load(out: Path, cache: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(str(out), cache_dir=str(cache))


def _raw(split: datasets.Dataset, *columns: str) -> datasets.Dataset:
    """The split with its image columns undecoded: {"bytes", "path"} as stored."""
    for column in columns:
        split = split.cast_column(column, datasets.Image(decode=False))
    return split


def _records(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text())


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_export_loads_back_with_the_same_features_rows_bytes_and_paths(tmp_path):
    card = make_dataset(tmp_path / "data")
    out, summary = _export(tmp_path, card)

    assert summary.out == out.absolute()
    assert {n: s.rows for n, s in summary.splits.items()} == {
        "train": 8,
        "validation": 4,
        "test": 6,
    }
    assert all(s.shards == 1 and s.bytes > 0 for s in summary.splits.values())
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        f"{s}-00000-of-00001.parquet" for s in ("test", "train", "validation")
    ]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "ubench-task.yaml"]
    assert not list(out.parent.glob(".*"))  # no temporary folder left beside it

    loaded = _load(out, tmp_path / "hf")
    assert set(loaded) == set(SPLITS)
    features = loaded["train"].features
    assert list(features) == ["image", "label", "scan_mask", "patient"]
    assert isinstance(features["image"], datasets.Image)
    assert isinstance(features["scan_mask"], datasets.Image)
    assert features["label"] == datasets.ClassLabel(names=["a", "b"])
    assert features["patient"] == datasets.Value("string")

    folder = tmp_path / "data" / card.dataset
    for split in SPLITS:
        records = _records(folder, split)
        rows = _raw(loaded[split], "image", "scan_mask")
        assert len(rows) == len(records)
        for row, record in zip(rows, records, strict=True):
            assert row["image"]["path"] == record["image"]
            assert row["image"]["bytes"] == (folder / record["image"]).read_bytes()
            assert row["scan_mask"]["path"] == record["scan_mask"]
            assert row["scan_mask"]["bytes"] == (folder / record["scan_mask"]).read_bytes()
            assert row["label"] == record["label"]
            assert row["patient"] == record["patient"]
    # decoded, the image is the PNG's own pixels
    first = np.asarray(loaded["train"][0]["image"])
    assert first.shape == (40, 48)


def test_the_task_card_and_dataset_card_describe_the_export(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 2, "test": 4})
    card = TaskCard(
        **{
            **{f: getattr(card, f) for f in ("name", "dataset", "classes", "group_field")},
            "organ": "thyroid",
            "license": "CC BY-NC-SA 4.0",
            "source": "generated for the test",
            "citation": "@article{x, title={X}}",
            "description": "A toy task.",
            "split_sizes": {"train": 99, "validation": 99, "test": 99},
        }
    )
    out, _ = _export(tmp_path, card)

    data = yaml.safe_load((out / "ubench-task.yaml").read_text())
    assert "path" not in data
    back = TaskCard.from_dict(data)
    assert back.classes == card.classes
    assert back.group_field == "patient"
    assert back.kind == "classification"
    assert back.organ == "thyroid"
    assert back.split_sizes == {"train": 6, "validation": 2, "test": 4}  # the exported counts

    readme = (out / "README.md").read_text()
    front = _front_matter(readme)
    assert front["pretty_name"] == card.name
    assert front["license"] == "cc-by-nc-sa-4.0"
    assert "license_name" not in front
    assert front["task_categories"] == ["image-classification"]
    assert front["tags"] == ["medical", "ultrasound", "ultrabench-eval"]
    assert front["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": s, "path": f"data/{s}-*"} for s in SPLITS],
        }
    ]
    assert "```bibtex\n@article{x, title={X}}\n```" in readme
    assert "| 1 | b |" in readme
    assert "A toy task." in readme
    assert "CC BY-NC-SA 4.0" in readme
    assert f'datasets.load_dataset("{out}")' in readme
    assert f"ubench bench --tasks {card.name} --data hf://ORG/NAME" in readme


def _segmentation_task(root: Path) -> TaskCard:
    """Records with a `mask` key naming PNG label masks (values 0/255), no scan masks."""
    rng = np.random.default_rng(1)
    folder = root / "seg_v1"
    for split, count in {"train": 4, "validation": 2, "test": 3}.items():
        records = []
        for i in range(count):
            image = rng.integers(0, 255, size=(24, 32)).astype(np.uint8)
            mask = np.zeros((24, 32), np.uint8)
            mask[4 : 10 + i, 6:20] = 255
            write_png(folder / f"images/{split}_{i}.png", image)
            write_png(folder / f"labels/{split}_{i}.png", mask)
            records.append({"image": f"images/{split}_{i}.png", "mask": f"labels/{split}_{i}.png"})
        (folder / f"{split}.json").write_text(json.dumps(records))
    return TaskCard.from_dict(
        {
            "name": "seg",
            "dataset": "seg_v1",
            "kind": "segmentation",
            "classes": ["background", "lesion"],
            "mask_field": "mask",
            "mask_values": [0, 255],
            "license": "see the record (not verified here)",
        }
    )


def test_a_segmentation_task_exports_its_masks_byte_identical(tmp_path):
    card = _segmentation_task(tmp_path / "data")
    out, _ = _export(tmp_path, card)

    loaded = _load(out, tmp_path / "hf")
    features = loaded["train"].features
    assert list(features) == ["image", "mask"]  # no label, no scan masks, no groups
    assert isinstance(features["mask"], datasets.Image)
    folder = tmp_path / "data" / "seg_v1"
    for split in SPLITS:
        records = _records(folder, split)
        rows = _raw(loaded[split], "image", "mask")
        assert [r["mask"]["path"] for r in rows] == [r["mask"] for r in records]
        for row, record in zip(rows, records, strict=True):
            assert row["mask"]["bytes"] == (folder / record["mask"]).read_bytes()
            assert row["image"]["bytes"] == (folder / record["image"]).read_bytes()

    back = TaskCard.from_dict(yaml.safe_load((out / "ubench-task.yaml").read_text()))
    assert back.is_segmentation and back.mask_field == "mask" and back.mask_values == (0, 255)
    readme = (out / "README.md").read_text()
    front = _front_matter(readme)
    assert front["task_categories"] == ["image-segmentation"]
    assert front["license"] == "other"
    assert front["license_name"] == "see-the-record-not-verified-here"
    assert "| 1 | lesion | 255 |" in readme


def test_small_shards_concatenate_to_the_split(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 10, "validation": 2, "test": 4})
    folder = tmp_path / "data" / card.dataset
    one = (folder / "images/train_000.png").stat().st_size
    one += (folder / "masks/scan/train_000.png").stat().st_size
    # about three records' files per shard; a limit below one record still gives one per shard
    out, summary = _export(tmp_path, card, max_shard_bytes=3 * one + 10)

    assert summary.splits["train"].shards >= 3
    shards = sorted((out / "data").glob("train-*.parquet"))
    count = summary.splits["train"].shards
    assert [p.name for p in shards] == [
        f"train-{i:05d}-of-{count:05d}.parquet" for i in range(count)
    ]
    rows = _raw(_load(out, tmp_path / "hf")["train"], "image")
    assert [r["image"]["path"] for r in rows] == [r["image"] for r in _records(folder, "train")]

    tiny, summary = _export(tmp_path, card, out=tmp_path / "tiny", max_shard_bytes=1)
    assert summary.splits["train"].shards == 10
    assert len(list((tiny / "data").glob("train-*"))) == 10


def test_a_non_empty_out_is_refused_without_overwrite_and_replaced_with_it(tmp_path):
    card = make_dataset(tmp_path / "data")
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    with pytest.raises(UserError, match="exists and is not empty: pass --overwrite"):
        _export(tmp_path, card, out=out)
    assert (out / "keep.txt").read_text() == "mine"

    _export(tmp_path, card, out=out, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert (out / "ubench-task.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    empty = tmp_path / "empty"
    empty.mkdir()
    _export(tmp_path, card, out=empty)  # an empty folder is filled without --overwrite
    assert (empty / "README.md").is_file()


def test_an_out_holding_the_task_folder_is_refused(tmp_path):
    card = make_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="holds the task's own data"):
        _export(tmp_path, card, out=tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / card.dataset / "train.json").is_file()


def test_an_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data")
    calls = []

    def interrupted(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # after one shard is on disk
            raise KeyboardInterrupt
        return real(self, path, *args, **kwargs)

    real = datasets.Dataset.to_parquet
    monkeypatch.setattr(datasets.Dataset, "to_parquet", interrupted)
    out = tmp_path / "export" / "toy"
    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, card, out=out)
    assert not out.exists()
    assert list((tmp_path / "export").iterdir()) == []


def test_a_full_disk_is_one_user_error_line(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data")

    def full(self, path, *args, **kwargs):
        raise OSError("error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", full)
    out = tmp_path / "export" / "toy"
    with pytest.raises(UserError, match="No space left on device; free some space") as caught:
        _export(tmp_path, card, out=out)
    assert "\n" not in str(caught.value)
    assert list((tmp_path / "export").iterdir()) == []


def test_progress_bars_are_left_as_they_were(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 2, "validation": 2, "test": 2})
    datasets.enable_progress_bars()
    _export(tmp_path, card)
    assert not datasets.are_progress_bars_disabled()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CC BY-NC-SA 4.0", ("cc-by-nc-sa-4.0", None)),
        ("MIT", ("mit", None)),
        ("MIT License", ("mit", None)),
        ("", ("unknown", None)),
        ("Apache 2.0", ("apache-2.0", None)),
        ("cc0-1.0", ("cc0-1.0", None)),
        ("CC-BY 4.0", ("cc-by-4.0", None)),
        ("BSD 3-Clause", ("bsd-3-clause", None)),
        ("GPL-3.0", ("gpl-3.0", None)),
        ("CC BY-NC-ND 4.0", ("cc-by-nc-nd-4.0", None)),
        (
            "see the Zenodo record 7272660 (not verified here)",
            ("other", "see-the-zenodo-record-7272660-not-verified-here"),
        ),
        ("CC BY-NC-SA (the kidneyUS README)", ("other", "cc-by-nc-sa-the-kidneyus-readme")),
    ],
)
def test_licence_text_maps_to_a_hub_licence_id(text, expected):
    assert hub_license(text) == expected


def test_a_long_licence_text_gives_a_short_slug():
    license_id, name = hub_license("per file, " * 20)
    assert license_id == "other"
    assert name is not None and len(name) <= 64 and not name.endswith("-")


def test_the_export_module_does_not_import_datasets_at_import_time():
    source = Path(hub_export.__file__).read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "datasets" in line.split()[1]]


def test_an_out_holding_a_hugging_face_tasks_dataset_is_refused(tmp_path):
    """A task read from a Hugging Face dataset: `--out` over that dataset (or a folder holding
    it) would delete it with --overwrite."""
    from hub_datasets import save_to_disk

    from ultrabench_eval.data.hub.source import HubSource
    from ultrabench_eval.data.hub.tasks import attach

    card = make_dataset(tmp_path / "data")
    source = save_to_disk(tmp_path / "data" / card.dataset, card, tmp_path / "parent" / "ds")
    (tmp_path / "parent" / "notes.txt").write_text("keep me")
    hf_card = attach(card, HubSource(path=str(source)))
    for out in (tmp_path / "parent", source):
        with pytest.raises(UserError, match="holds the task's own data"):
            _export(tmp_path, hf_card, out=out, overwrite=True)
    assert (tmp_path / "parent" / "notes.txt").read_text() == "keep me"
    assert (source / "dataset_dict.json").is_file()


def test_an_exported_generated_task_loads_back_as_data_not_as_the_generator(tmp_path):
    """The exported card names no generator or preparer: loaded back, it reads the export."""
    card = make_dataset(tmp_path / "data")
    card = TaskCard(name=card.name, dataset=card.dataset, classes=card.classes, generator="synth")
    out, _ = _export(tmp_path, card)
    data = yaml.safe_load((out / "ubench-task.yaml").read_text())
    assert "generator" not in data and "preparer" not in data
