"""Hugging Face datasets built in the tests from a prepared folder task: the same image files as
a `save_to_disk` folder, parquet files and an imagefolder (the fixture `restored_tasks`, in
conftest, undoes the cards a test registers for them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
from conftest import make_dataset

from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.task_card import SPLITS, TaskCard

COUNTS = {"train": 12, "validation": 6, "test": 8}


def folder_task(root: Path, with_masks: bool = True, counts=None) -> TaskCard:
    """A prepared folder task under `root` (conftest.make_dataset), registered by name."""
    card = make_dataset(root, counts=dict(counts or COUNTS), with_masks=with_masks)
    TASKS.register(card.name, card, replace=True)
    return card


def records(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text())


def dataset_dict(folder: Path, card: TaskCard, splits=SPLITS) -> datasets.DatasetDict:
    """The folder's splits as a DatasetDict: image bytes and paths, ClassLabel labels, the
    patient column and, where the records have them, the scan masks."""
    has_masks = any("scan_mask" in r for s in splits for r in records(folder, s))
    columns = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(card.classes)),
        "patient": datasets.Value("string"),
    }
    if has_masks:
        columns["scan_mask"] = datasets.Image()
    features = datasets.Features(columns)
    out = {}
    for split in splits:
        rows = records(folder, split)

        def file(rel):
            return {"bytes": (folder / rel).read_bytes(), "path": rel}

        data = {
            "image": [file(r["image"]) for r in rows],
            "label": [r["label"] for r in rows],
            "patient": [r["patient"] for r in rows],
        }
        if has_masks:
            data["scan_mask"] = [file(r["scan_mask"]) for r in rows]
        out[split] = datasets.Dataset.from_dict(data, features=features)
    return datasets.DatasetDict(out)


def save_to_disk(folder: Path, card: TaskCard, out: Path, splits=SPLITS) -> Path:
    dataset_dict(folder, card, splits).save_to_disk(str(out))
    return out


def parquet_folder(folder: Path, card: TaskCard, out: Path, splits=SPLITS) -> Path:
    """The hub's layout: data/<split>-00000-of-00001.parquet."""
    (out / "data").mkdir(parents=True)
    for split, ds in dataset_dict(folder, card, splits).items():
        ds.to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    return out


def imagefolder(folder: Path, card: TaskCard, out: Path) -> Path:
    """<split>/<class>/<file>; the folder task's split files are rewritten in the order
    `datasets` lists an imagefolder (sorted paths), so both hold the same images in the same
    order."""
    for split in SPLITS:
        rows = records(folder, split)
        for row in rows:
            target = out / split / card.classes[row["label"]] / Path(row["image"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / row["image"], target)
        rows.sort(key=lambda r: (card.classes[r["label"]], Path(r["image"]).name))
        (folder / f"{split}.json").write_text(json.dumps(rows))
    return out


def one_line(exc) -> str:
    """A raised error's text, checked to be one line (`exc`: pytest's ExceptionInfo)."""
    text = str(exc.value)
    assert text and "\n" not in text
    return text
