"""Reader and validator for UltraBench-format dataset folders.

A folder holds `train.json`, `validation.json` and `test.json`, each a JSON list of records
with a relative `image` path, an integer label (field named by the task card), an optional
relative `scan_mask` path and an optional group field (patient, source video). A segmentation
task's records carry a relative label-mask path instead of a label (the key its card names in
`mask_field`); their `label` is 0 throughout. Every image and mask path must resolve inside
the folder: a symlink inside it is followed, and refused when its
target lies outside (a task folder cannot make the harness read files elsewhere).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.task_card import SPLITS, TaskCard

_MAX_LISTED = 4
OverlapPolicy = Literal["refuse", "allow", "ignore"]


@dataclass(frozen=True)
class Record:
    image: str
    label: int
    scan_mask: str | None = None
    group: str | None = None
    mask: str | None = None  # segmentation: the label mask's path


@dataclass(frozen=True)
class Split:
    name: str
    root: Path
    records: tuple[Record, ...]

    @property
    def ids(self) -> list[str]:
        """Image paths relative to the dataset folder: the images' identity everywhere."""
        return [r.image for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class Dataset:
    card: TaskCard
    root: Path
    splits: dict[str, Split]
    # what `overlap="allow"` found shared between splits (None: not checked, or refused)
    overlap: tuple[str, ...] | None = None
    # where a Hugging Face dataset's task came from (id or path, commit, fingerprints, split
    # mapping and carving); None for a prepared folder
    source: dict[str, Any] | None = None


class DatasetError(UserError):
    """A dataset folder that does not hold a valid task: every problem found, in one line."""

    def __init__(self, root: Path, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        super().__init__(f"dataset folder {root} is not valid: {shown}{more}")


def dataset_path(card: TaskCard, data_root: Path) -> Path:
    return Path(data_root) / card.dataset


def open_dataset(
    card: TaskCard,
    data_root: Path,
    check_files: bool = True,
    *,
    overlap: OverlapPolicy = "ignore",
    digest_cache: Path | None = None,
) -> Dataset:
    """Read and validate the task's folder under `data_root`; raise DatasetError listing what is
    wrong (missing folder or split file, malformed records, paths outside the folder, missing
    images or masks, labels outside the class list, classes with no example).

    A card with an `hf` source is read from its Hugging Face dataset, written once as a folder
    under `<digest_cache or the cache root>/hf/` (`data_root` is not used then).

    `overlap`: "refuse" raises OverlapError when an image (by path or by content) or a group
    lies in two splits; "allow" records what is shared in `Dataset.overlap`; "ignore" does not
    look. `digest_cache`: the cache folder keeping the files' content digests between runs."""
    source = None
    if card.hf is not None:
        from ultrabench_eval.core.config import cache_root
        from ultrabench_eval.data.hub.materialise import hub_task

        card, data_root, source = hub_task(card, digest_cache or cache_root())
    root = dataset_path(card, data_root)
    if not root.is_dir():
        hint = (
            "run `ubench synth --out DIR` to generate it"
            if card.generator == "synth"
            else "prepare the dataset into that folder or point --data / UBENCH_DATA at its parent"
        )
        raise UserError(f"dataset folder for task '{card.name}' not found: {root} ({hint})")
    problems: list[str] = []
    splits = {}
    for name in SPLITS:
        records = _read_split(root, name, card, problems)
        if records is not None:
            splits[name] = Split(name, root, tuple(records))
    if check_files:
        for split in splits.values():
            _check_files(split, problems)
    if not card.is_segmentation:
        _check_classes(card, splits, problems)
    if problems:
        raise DatasetError(root, problems)
    if overlap == "ignore":
        return Dataset(card, root, splits, source=source)
    if card.group_field and all(r.group is None for s in splits.values() for r in s.records):
        # a misspelt group field would silently switch the patient-overlap check off
        raise DatasetError(
            root,
            [
                f"no record has the card's group field '{card.group_field}': correct "
                "`group_field` in the card, or remove it if the task has no groups"
            ],
        )
    from ultrabench_eval.data.overlap import find_overlap

    found = find_overlap(card, splits, digest_cache if check_files else None, check_files)
    if found and overlap == "refuse":
        raise OverlapError(card.name, found)
    return Dataset(card, root, splits, tuple(found) if overlap == "allow" else None, source)


class OverlapError(UserError):
    """Train/validation/test share images or groups: scores would be inflated."""

    def __init__(self, task: str, found: list[str]):
        super().__init__(
            f"task '{task}': {'; '.join(found)}; a test image (or patient) seen in training "
            "inflates the scores: remove it from one split (see `ubench tasks check`), or pass "
            "--allow-overlap to run anyway (recorded in the result records)"
        )


def _read_split(root: Path, name: str, card: TaskCard, problems: list[str]) -> list[Record] | None:
    path = root / f"{name}.json"
    if not path.is_file():
        problems.append(f"missing split file {name}.json")
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{name}.json is not valid JSON ({exc})")
        return None
    if not isinstance(raw, list):
        problems.append(f"{name}.json must hold a list of records, not a {type(raw).__name__}")
        return None
    if not raw:
        problems.append(f"{name}.json has no records")
        return None
    records = []
    seen: set[str] = set()
    inside = InsideCheck(root)
    for index, item in enumerate(raw):
        where = f"{name}.json record {index}"
        record = _parse_record(item, card, where, problems)
        if record is None or not inside.check(record, where, problems):
            continue
        if record.image in seen:
            problems.append(f"{where}: image {record.image} listed twice in {name}.json")
            continue
        seen.add(record.image)
        records.append(record)
    return records


def _parse_record(item: object, card: TaskCard, where: str, problems: list[str]) -> Record | None:
    if not isinstance(item, dict):
        problems.append(f"{where} is not an object")
        return None
    image = item.get("image")
    if not isinstance(image, str) or not image:
        problems.append(f"{where} has no 'image' path")
        return None
    if card.is_segmentation:
        label, mask_path = 0, item.get(card.mask_field or "")
        if not isinstance(mask_path, str) or not mask_path:
            problems.append(
                f"{where} ({image}): no label mask path in the card's mask field "
                f"'{card.mask_field}' (every image of a segmentation task needs its mask)"
            )
            return None
    else:
        label, mask_path = _parse_label(item.get(card.label_field), card), None
    if label is None:
        value = item.get(card.label_field, "<missing>")
        problems.append(
            f"{where} ({image}): label field '{card.label_field}' = {value!r} is outside the "
            f"class list (0..{card.num_classes - 1}: {', '.join(card.classes)})"
        )
        return None
    mask = item.get("scan_mask")
    if mask is not None and (not isinstance(mask, str) or not mask):
        problems.append(f"{where} ({image}): 'scan_mask' must be a relative path or absent")
        return None
    group = item.get(card.group_field) if card.group_field else None
    return Record(
        image=image,
        label=label,
        scan_mask=mask,
        group=None if group is None else str(group),
        mask=mask_path,
    )


class InsideCheck:
    """Whether a record's paths resolve inside the task folder (symlinks followed)."""

    def __init__(self, root: Path):
        self.root = root
        self.resolved = root.resolve()

    def check(self, record: Record, where: str, problems: list[str]) -> bool:
        paths = (("image", record.image), ("scan_mask", record.scan_mask), ("mask", record.mask))
        for kind, rel in paths:
            if rel is not None and not self.contains(rel):
                problems.append(
                    f"{where}: {kind} path {rel} lies outside the task folder (paths must be "
                    "relative and stay inside it; copy the file into the folder)"
                )
                return False
        return True

    def contains(self, rel: str) -> bool:
        try:
            return (self.root / rel).resolve().is_relative_to(self.resolved)
        except (OSError, RuntimeError, ValueError):  # symlink loop, NUL byte
            return False


def _parse_label(value: object, card: TaskCard) -> int | None:
    # UltraBench writes integer labels; a class name is accepted too.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)) and 0 <= int(value) < card.num_classes:
        return int(value)
    if isinstance(value, str) and value in card.classes:
        return card.classes.index(value)
    return None


def _check_files(split: Split, problems: list[str]) -> None:
    for record in split.records:
        paths = (("image", record.image), ("scan mask", record.scan_mask), ("mask", record.mask))
        for kind, rel in paths:
            if rel is None:
                continue
            path = split.root / rel
            if not path.is_file():
                problems.append(f"{split.name}.json: {kind} {rel} not found")


def _check_classes(card: TaskCard, splits: dict[str, Split], problems: list[str]) -> None:
    # Training needs every class; the test macro-F1 is only comparable when every class is there.
    for name in ("train", "test"):
        split = splits.get(name)
        if split is None or not split.records:
            continue
        counts = np.bincount(split.labels, minlength=card.num_classes)
        empty = [card.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            problems.append(f"{name}.json has no example of class(es) {', '.join(empty)}")
