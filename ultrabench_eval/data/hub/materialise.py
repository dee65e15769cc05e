"""A Hugging Face dataset written out as an UltraBench-format task folder in the cache, so that the
image store, the features and the probes read it as they read any prepared task.

The folder lies at `<cache>/hf/<source>/<key>/<dataset>/`: the image, label-mask and scan-mask
bytes exactly as the dataset holds them (so an image decodes to the same pixels as its original
file), `train.json`, `validation.json`, `test.json`, and `source.json` (where the data came from:
id or path, the commit, the `datasets` fingerprints, the split mapping, how validation was
carved). The key digests everything the folder depends on: for a local source the files' sizes
and times (an unchanged folder is not loaded again), for a hub source the commit and the
fingerprints. The folder is written beside its place and renamed into it: whole or absent.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ultrabench_eval.core.atomic import DISK_ERRORS
from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub.carve import carve_validation
from ultrabench_eval.data.hub.columns import Columns, class_indices, find_columns
from ultrabench_eval.data.hub.load import LoadedSource, load_source, map_splits
from ultrabench_eval.data.hub.source import IMAGE_SUFFIXES, HubSource
from ultrabench_eval.data.image_store import stale_temp_dirs
from ultrabench_eval.data.task_card import SPLITS, TaskCard

FORMAT_VERSION = "1"
SOURCE_FILE = "source.json"
GROUP_KEY = "group"  # the record key of a group column, when the card names none
_GENERATED = "_hf"  # folder of the files whose own path cannot be kept
_SAFE_PATH = re.compile(r"[\w][\w .()+-]*(/[\w][\w .()+-]*)*")
_FORMAT_SUFFIX = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "GIF": ".gif",
    "WEBP": ".webp",
}
_BATCH = 64


def hub_task(
    card: TaskCard, cache_root: Path, *, progress: bool = False
) -> tuple[TaskCard, Path, dict[str, Any]]:
    """(the card as the folder reads, the data root holding the folder, the provenance) for a
    card whose data is a Hugging Face dataset (`card.hf`); written on first use."""
    source: HubSource = card.hf
    if source is None:
        raise ValueError(f"task {card.name} has no Hugging Face source")
    base = Path(cache_root) / "hf" / source.slug
    loaded = None
    if source.is_hub:
        loaded = load_source(source, progress)
        identity = {"revision": loaded.revision, "fingerprints": loaded.fingerprints()}
    else:
        identity = {"files": _manifest(Path(source.path))}
    key = json_digest(
        {
            "format": FORMAT_VERSION,
            "source": asdict(source),
            "card": _card_identity(card),
            **identity,
        }
    )[:16]
    root = base / key
    done = root / card.dataset / SOURCE_FILE
    if done.is_file():
        provenance = json.loads(done.read_text(encoding="utf-8"))
        return _folder_card(card, provenance), root, provenance
    if loaded is None:
        loaded = load_source(source, progress)
    provenance = _write(card, loaded, root)
    return _folder_card(card, provenance), root, provenance


def _folder_card(card: TaskCard, provenance: dict[str, Any]) -> TaskCard:
    """The card the written folder is read with: its group key when the card names none."""
    if card.group_field is None and provenance["columns"].get("group"):
        return replace(card, group_field=GROUP_KEY)
    return card


def _card_identity(card: TaskCard) -> dict[str, Any]:
    """What of the card shapes the folder's records."""
    return {
        "dataset": card.dataset,
        "classes": list(card.classes),
        "kind": card.kind,
        "label_field": card.label_field,
        "group_field": card.group_field,
        "mask_field": card.mask_field,
    }


def _manifest(path: Path) -> list[Any]:
    """Every file of a local source with its size and time: a change means a new folder."""
    if path.is_file():
        stat = path.stat()
        return [[path.name, stat.st_size, stat.st_mtime_ns]]
    if not path.is_dir():
        raise UserError(
            f"dataset {path} not found (give a save_to_disk folder, parquet files "
            "or an imagefolder)"
        )
    found = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .cache, .git: not the data
        stat = file.stat()
        found.append([rel.as_posix(), stat.st_size, stat.st_mtime_ns])
    return found


def _write(card: TaskCard, loaded: LoadedSource, root: Path) -> dict[str, Any]:
    source = loaded.source
    mapping = map_splits(loaded)
    features = loaded.splits[mapping["train"]].features
    for ours, theirs in mapping.items():
        if theirs is not None and loaded.splits[theirs].features != features:
            raise UserError(
                f"dataset {source.label}: split '{theirs}' ({ours}) has other columns than "
                f"'{mapping['train']}' ({', '.join(loaded.splits[theirs].features)} against "
                f"{', '.join(features)})"
            )
    columns = find_columns(
        features,
        source,
        source.label,
        segmentation=card.is_segmentation,
        label_field=card.label_field,
        group_field=card.group_field,
        mask_field=card.mask_field,
    )
    if card.group_field and columns.group is None:
        raise UserError(
            f"dataset {source.label} has no column '{card.group_field}' (the card's "
            f"group_field: patients kept out of two splits): name the dataset's patient column "
            "with --group-column (`group_column` in the card's hf block)"
        )
    plan = _split_plan(card, loaded, mapping, columns)
    _check_classes(card, source, mapping, plan)
    # `.<key>.tmp-<host>-<pid>`: what a killed run left is known by its dead process
    tmp = root.parent / f".{root.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for stale in stale_temp_dirs(root.parent):
        shutil.rmtree(stale, ignore_errors=True)
    folder = tmp / card.dataset
    try:
        folder.mkdir(parents=True)
        writer = _FolderWriter(folder, columns)
        sizes = {}
        for ours in SPLITS:
            dataset, rows, labels, groups = plan[ours]
            records = writer.write_split(ours, dataset, rows, labels, groups, card)
            (folder / f"{ours}.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
            sizes[ours] = len(records)
        provenance = {
            "format": FORMAT_VERSION,
            "dataset": source.label,
            "id": source.id,
            "path": source.path,
            "revision": loaded.revision,
            "config": source.config,
            "fingerprint": loaded.fingerprints(),
            "splits": {ours: mapping[ours] or "carved from train" for ours in SPLITS},
            "sizes": sizes,
            "validation": plan["carving"],
            "columns": columns.as_dict(),
            "license": loaded.license,
        }
        (folder / SOURCE_FILE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / card.dataset / SOURCE_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run wrote the same folder first
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in DISK_ERRORS:
            raise UserError(
                f"cannot write the task folder of {source.label} under {root.parent}: "
                f"{exc.strerror}; free some space or point --cache elsewhere"
            ) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return provenance


def _check_classes(
    card: TaskCard, source: HubSource, mapping: dict[str, str | None], plan: dict[str, Any]
) -> None:
    """Every class in train and test, said of the dataset's own splits (the folder's check would
    name the cache's copy)."""
    for ours in ("train", "test"):
        labels = plan[ours][2]
        if labels is None:
            continue
        counts = np.bincount(labels, minlength=card.num_classes)
        empty = [card.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            theirs = mapping[ours]
            raise UserError(
                f"dataset {source.label}: split '{theirs}' ({ours}) has no example of class(es) "
                f"{', '.join(empty)}; a probe needs every class in train and test (use a card "
                "without them, or another split with --hf-splits)"
            )


def _split_plan(
    card: TaskCard, loaded: LoadedSource, mapping: dict[str, str | None], columns: Columns
) -> dict[str, Any]:
    """Per split of ours: (dataset, its rows, their class indices or None, their groups or
    None); and `carving`, how validation was carved (None when the dataset has one)."""
    source = loaded.source
    plan: dict[str, Any] = {}
    read: dict[str, tuple] = {}
    for ours, theirs in mapping.items():
        if theirs is None:
            continue
        dataset = loaded.splits[theirs]
        where = f"{source.label} split {theirs}"
        labels = None
        if columns.label is not None:
            labels = class_indices(
                dataset.features, dataset[columns.label], columns.label, card.classes, where
            )
        groups = None
        if columns.group is not None:
            groups = [None if g is None else str(g) for g in dataset[columns.group]]
        read[ours] = (dataset, labels, groups)
    plan["carving"] = None
    if mapping["validation"] is None:
        dataset, labels, groups = read["train"]
        carved = carve_validation(
            labels, groups, source.validation_fraction, source.seed, count=len(dataset)
        )
        for ours, rows in (("train", carved.train), ("validation", carved.validation)):
            plan[ours] = (
                dataset,
                rows,
                None if labels is None else labels[rows],
                None if groups is None else [groups[i] for i in rows],
            )
        plan["carving"] = {
            "from": mapping["train"],
            "fraction": source.validation_fraction,
            "seed": source.seed,
            "stratified": carved.stratified,
            "grouped_by": columns.group,
            "images": len(carved.validation),
        }
    for ours, (dataset, labels, groups) in read.items():
        if ours not in plan:
            plan[ours] = (dataset, np.arange(len(dataset)), labels, groups)
    return plan


class _FolderWriter:
    """Writes each row's image (and masks) as the bytes the dataset holds, under its own
    relative path when that is safe and free, else under `_hf/<column>/<split>/<row>`."""

    def __init__(self, folder: Path, columns: Columns):
        self.folder = folder
        self.columns = columns
        self.used: set[str] = set()

    def write_split(
        self,
        split: str,
        dataset: Any,
        rows: np.ndarray,
        labels: np.ndarray | None,
        groups: list[str | None] | None,
        card: TaskCard,
    ) -> list[dict[str, Any]]:
        import datasets

        files = {
            "image": self.columns.image,
            "mask": self.columns.mask,
            "scan_mask": self.columns.scan_mask,
        }
        files = {role: column for role, column in files.items() if column is not None}
        raw = dataset.select_columns(list(dict.fromkeys(files.values())))
        for column in set(files.values()):
            raw = raw.cast_column(column, datasets.Image(decode=False))
        records = []
        for start in range(0, len(rows), _BATCH):
            positions = rows[start : start + _BATCH]
            batch = raw[[int(p) for p in positions]]
            for offset, row in enumerate(positions):
                at = start + offset
                record: dict[str, Any] = {}
                for role, column in files.items():
                    value = batch[column][offset]
                    if value is None:
                        if role == "scan_mask":
                            continue
                        raise UserError(
                            f"{split} row {int(row)} of the dataset has no {role.replace('_', ' ')}"
                            f" in column '{column}' (every row needs one)"
                        )
                    record[role] = self._write_file(value, column, split, int(row))
                out = {"image": record["image"]}
                if card.is_segmentation:
                    out["label"] = 0
                    out[card.mask_field] = record["mask"]
                else:
                    out[card.label_field] = int(labels[at])
                if "scan_mask" in record:
                    out["scan_mask"] = record["scan_mask"]
                if groups is not None and groups[at] is not None:
                    out[card.group_field or GROUP_KEY] = groups[at]
                records.append(out)
        return records

    def _write_file(self, value: dict, column: str, split: str, row: int) -> str:
        data = value.get("bytes")
        given = value.get("path")
        if data is None:
            if not given:
                raise UserError(
                    f"{split} row {row}: column '{column}' has neither bytes nor a file path"
                )
            try:
                data = Path(given).read_bytes()
            except OSError as exc:
                raise UserError(
                    f"{split} row {row}: cannot read {column} file {given} ({exc.strerror})"
                ) from None
        rel = self._name(given, data, column, split, row)
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def _name(self, given: str | None, data: bytes, column: str, split: str, row: int) -> str:
        if given and _keepable(given) and given not in self.used:
            self.used.add(given)
            return given
        suffix = Path(given).suffix.lower() if given else ""
        if suffix not in IMAGE_SUFFIXES:
            suffix = _sniff_suffix(data)
        rel = f"{_GENERATED}/{column}/{split}/{row:06d}{suffix}"
        self.used.add(rel)
        return rel


def _keepable(path: str) -> bool:
    """A relative path that stays inside the folder and names an image file."""
    pure = PurePosixPath(path)
    return (
        not pure.is_absolute()
        and "\\" not in path
        and len(path) < 200
        and _SAFE_PATH.fullmatch(path) is not None
        and ".." not in pure.parts
        and pure.parts[0] != _GENERATED
        and pure.suffix.lower() in IMAGE_SUFFIXES
        and pure.name not in {f"{s}.json" for s in SPLITS} | {SOURCE_FILE}
    )


def _sniff_suffix(data: bytes) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return _FORMAT_SUFFIX.get(image.format or "", ".img")
    except (UnidentifiedImageError, OSError, ValueError):
        return ".img"  # the image store says it cannot decode it, naming the file
