"""`ubench tasks check NAME DATA_DIR`: a prepared folder against its task card.

Checks, in order: the folder reads as a valid task (split files, records, labels, classes in
train and test); images per split against the card's `split_sizes`; images per class; every
image and mask file the records name exists; no image's bytes appear in two splits (content
hash); no group (patient, source video) appears in two splits where the card has a
`group_field`. A failed check makes the command exit 1; a folder that cannot be read at all is
a user error (exit 2).

A segmentation task's records all have label 0: its classes are counted from the label masks
instead, each decoded at its own resolution as the label store decodes it, per split: the
images whose mask holds each class, and each class's share of the mask pixels. A mask with a
pixel value the card does not list, or of another size than its image, fails the `masks`
check (the label store would refuse it later).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import Dataset, DatasetError, InsideCheck, open_dataset
from ultrabench_eval.data.label_store import decode_label_mask
from ultrabench_eval.data.overlap import file_digest
from ultrabench_eval.data.task_card import SPLITS, TaskCard

_LISTED = 3
OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skip"


@dataclass(frozen=True)
class Finding:
    status: str  # ok, FAIL, warn or skip
    check: str
    text: str


@dataclass
class CheckReport:
    card: TaskCard
    folder: Path
    sizes: dict[str, int] = field(default_factory=dict)  # split -> images
    counts: dict[str, list[int]] = field(default_factory=dict)  # split -> images per class
    # segmentation: split -> each class's share of the split's mask pixels (0-1)
    pixel_share: dict[str, list[float]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.status != FAIL for f in self.findings)

    def add(self, status: str, check: str, text: str) -> None:
        self.findings.append(Finding(status, check, text))


def task_folder(card: TaskCard, data_dir: Path) -> tuple[TaskCard, Path]:
    """The card (renamed to the folder when DATA_DIR is the task folder itself) and the root to
    open: DATA_DIR may be the dataset root holding `<card.dataset>/` or that folder."""
    data_dir = Path(data_dir).expanduser()
    if (data_dir / card.dataset).is_dir():
        return card, data_dir
    if (data_dir / "train.json").is_file():
        return replace(card, dataset=data_dir.name), data_dir.parent
    raise UserError(
        f"{data_dir} holds neither the task folder {card.dataset}/ nor train.json; give the "
        f"OUT_DIR of `ubench prepare {card.name}` (or the folder itself)"
    )


def check_hub_task(card: TaskCard, cache_root: Path) -> CheckReport:
    """The checks, on the folder a Hugging Face dataset's task is written out as."""
    from ultrabench_eval.data.hub.materialise import hub_task

    folder_card, root, _ = hub_task(card, cache_root)
    return check_task(replace(folder_card, hf=None), root)


def check_task(card: TaskCard, data_dir: Path) -> CheckReport:
    card, root = task_folder(card, data_dir)
    report = CheckReport(card, root / card.dataset)
    try:
        dataset = open_dataset(card, root, check_files=False)
    except DatasetError as exc:
        report.add(FAIL, "folder", "; ".join(exc.problems))
        return report
    report.add(OK, "folder", "split files and records are valid")
    _check_sizes(report, dataset)
    if card.is_segmentation:
        _count_mask_classes(report, dataset)
    else:
        for name in SPLITS:
            counts = np.bincount(dataset.splits[name].labels, minlength=card.num_classes)
            report.counts[name] = [int(c) for c in counts]
    _check_classes(report)
    raw = {name: _raw_records(report.folder, name) for name in SPLITS}
    present = _check_files(report, raw)
    _check_duplicates(report, dataset, present)
    _check_groups(report, dataset)
    return report


def _raw_records(folder: Path, split: str) -> list[dict]:
    # open_dataset has read and validated these; the extra mask fields are only here
    return json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))


def _check_sizes(report: CheckReport, dataset: Dataset) -> None:
    sizes = report.sizes = {name: len(dataset.splits[name]) for name in SPLITS}
    expected = report.card.split_sizes
    if not expected:
        report.add(SKIP, "sizes", "the card gives no split sizes")
        return
    wrong = [
        f"{s} {sizes[s]} (card {expected[s]})"
        for s in SPLITS
        if s in expected and sizes[s] != expected[s]
    ]
    shown = "/".join(str(expected.get(s, "?")) for s in SPLITS)
    if wrong:
        report.add(FAIL, "sizes", f"differ from the card's {shown}: {', '.join(wrong)}")
    else:
        report.add(OK, "sizes", f"match the card ({shown})")


def _check_classes(report: CheckReport) -> None:
    card = report.card
    empty = [
        f"{name}: {', '.join(card.classes[i] for i, c in enumerate(report.counts[name]) if c == 0)}"
        for name in SPLITS
        if 0 in report.counts[name]
    ]
    if empty:
        # a classification folder without a class in train or test fails when it is read;
        # a segmentation class absent from a split cannot be learnt or scored there
        report.add(WARN, "classes", f"classes without images in {'; '.join(empty)}")
    else:
        report.add(OK, "classes", "every class has images in every split")


def _count_mask_classes(report: CheckReport, dataset: Dataset) -> None:
    """Per split, the images whose mask holds each class and each class's share of the pixels;
    a mask the card's classes cannot describe is a `masks` failure, not a crash."""
    card = report.card
    unreadable: list[tuple[str, str]] = []  # (where, why)
    wrong_size: list[str] = []
    decoded = 0
    for name in SPLITS:
        split = dataset.splits[name]
        images = np.zeros(card.num_classes, dtype=np.int64)
        pixels = np.zeros(card.num_classes, dtype=np.int64)
        for record in split.records:
            assert record.mask is not None, "a segmentation record has a mask (checked on reading)"
            if not (split.root / record.mask).is_file():
                continue  # the files check lists it
            try:
                classes = decode_label_mask(split.root, record.mask, card)
            except UserError as exc:
                unreadable.append((f"{name}: {record.mask}", str(exc)))
                continue
            decoded += 1
            per_class = np.bincount(classes.ravel(), minlength=card.num_classes)
            images += per_class > 0
            pixels += per_class
            image_size = _image_size(split.root / record.image)
            mask_size = classes.shape[::-1]
            if image_size is not None and image_size != mask_size:
                wrong_size.append(
                    f"{name}: {record.mask} {_wxh(mask_size)} (image {_wxh(image_size)})"
                )
        report.counts[name] = [int(c) for c in images]
        total = int(pixels.sum())
        report.pixel_share[name] = [float(p) / total if total else 0.0 for p in pixels]
    _report_masks(report, unreadable, wrong_size, decoded)


def _report_masks(
    report: CheckReport, unreadable: list[tuple[str, str]], wrong_size: list[str], decoded: int
) -> None:
    card = report.card
    if unreadable:
        _, first = unreadable[0]
        also = f" (also {_some([w for w, _ in unreadable[1:]])})" if len(unreadable) > 1 else ""
        report.add(
            FAIL, "masks", f"{len(unreadable)} label mask(s) do not fit the card: {first}{also}"
        )
    if wrong_size:
        report.add(
            FAIL,
            "masks",
            f"{len(wrong_size)} label mask(s) of another size than their image: "
            f"{_some(wrong_size)} (make each mask its image's size)",
        )
    if not (unreadable or wrong_size):
        values = ", ".join(f"{v} {c}" for v, c in zip(card.pixel_values, card.classes, strict=True))
        report.add(OK, "masks", f"{decoded} label masks hold only the card's values ({values})")


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header; None when it cannot be read (the files and
    folder checks say why)."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _wxh(size: tuple[int, ...]) -> str:
    return f"{size[0]}x{size[1]}"


def _mask_fields(record: dict) -> list[str]:
    return [k for k, v in record.items() if "mask" in k and isinstance(v, str) and v]


def _check_files(report: CheckReport, raw: dict[str, list[dict]]) -> set[str]:
    """Every image and mask path the records name; returns the images present."""
    missing: list[str] = []
    outside: list[str] = []  # image and scan_mask paths are checked when the folder is read
    inside = InsideCheck(report.folder)
    present: set[str] = set()
    images = masks = 0
    for name, records in raw.items():
        for record in records:
            image = record["image"]
            images += 1
            if (report.folder / image).is_file():
                present.add(image)
            else:
                missing.append(f"{name}: {image}")
            for key in _mask_fields(record):
                masks += 1
                if not inside.contains(record[key]):
                    outside.append(f"{name}: {record[key]} ({key})")
                elif not (report.folder / record[key]).is_file():
                    missing.append(f"{name}: {record[key]} ({key})")
    if outside:
        report.add(FAIL, "files", f"{len(outside)} outside the task folder: {_some(outside)}")
    if missing:
        report.add(FAIL, "files", f"{len(missing)} missing: {_some(missing)}")
    elif not outside:
        report.add(OK, "files", f"{images} images and {masks} masks present")
    return present


def _check_duplicates(report: CheckReport, dataset: Dataset, present: set[str]) -> None:
    where: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name in SPLITS:
        for image in dataset.splits[name].ids:
            if image in present:
                where[file_digest(report.folder / image)].append((name, image))
    across = [places for places in where.values() if len({s for s, _ in places}) > 1]
    within = [p for p in where.values() if len(p) > 1 and len({s for s, _ in p}) == 1]
    if across:
        shown = [" = ".join(f"{image} ({split})" for split, image in places) for places in across]
        report.add(FAIL, "duplicates", f"{len(across)} image(s) in two splits: {_some(shown)}")
    else:
        report.add(OK, "duplicates", f"no image in two splits ({len(where)} distinct images)")
    if within:
        shown = [" = ".join(image for _, image in places) for places in within]
        report.add(
            WARN, "duplicates", f"{len(within)} image(s) repeated within a split: {_some(shown)}"
        )


def _check_groups(report: CheckReport, dataset: Dataset) -> None:
    field_name = report.card.group_field
    if not field_name:
        report.add(SKIP, "leakage", "the card has no group field (patient, source)")
        return
    splits_of: dict[str, set[str]] = defaultdict(set)
    without = 0
    for name in SPLITS:
        for record in dataset.splits[name].records:
            if record.group is None:
                without += 1
            else:
                splits_of[record.group].add(name)
    if not splits_of:
        report.add(FAIL, "leakage", f"no record has the card's group field '{field_name}'")
        return
    if without:
        report.add(WARN, "leakage", f"{without} record(s) without '{field_name}' are not checked")
    shared = sorted((g for g, s in splits_of.items() if len(s) > 1), key=lambda g: (len(g), g))
    if shared:
        shown = [
            f"{field_name} {g} in {' and '.join(s for s in SPLITS if s in splits_of[g])}"
            for g in shared
        ]
        report.add(FAIL, "leakage", f"{len(shared)} {field_name}(s) in two splits: {_some(shown)}")
    else:
        report.add(OK, "leakage", f"no {field_name} in two splits ({len(splits_of)} {field_name}s)")


def _some(items: list[str]) -> str:
    more = f" and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return "; ".join(items[:_LISTED]) + more


def format_report(report: CheckReport) -> str:
    from tabulate import tabulate

    card = report.card
    lines = [f"task {card.name}: {report.folder}"]
    if report.counts:
        rows = [
            [name, report.sizes[name], card.split_sizes.get(name, ""), *_class_cells(report, name)]
            for name in SPLITS
        ]
        headers = ["split", "images", "card", *card.classes]
        lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
        if report.pixel_share:
            lines.append("per class: images whose mask holds it (its share of the mask pixels)")
    lines += [f"{f.status:<5} {f.check}: {f.text}" for f in report.findings]
    failed = sum(f.status == FAIL for f in report.findings)
    lines.append("passed" if report.passed else f"FAILED: {failed} check(s)")
    return "\n".join(lines)


def _class_cells(report: CheckReport, split: str) -> list[str]:
    counts = report.counts[split]
    if split not in report.pixel_share:
        return [str(c) for c in counts]
    return [f"{c} ({_percent(p)})" for c, p in zip(counts, report.pixel_share[split], strict=True)]


def _percent(share: float) -> str:
    """`12.3%`; a class present in only a few pixels is `<0.1%`, not `0.0%`."""
    return "<0.1%" if 0 < share < 0.0005 else f"{100 * share:.1f}%"


def report_dict(report: CheckReport) -> dict:
    out = {
        "task": report.card.name,
        "kind": report.card.kind,
        "folder": str(report.folder),
        "passed": report.passed,
        "classes": list(report.card.classes),
        "sizes": report.sizes,
        "counts": report.counts,
        "split_sizes": report.card.split_sizes,
        "findings": [
            {"status": f.status, "check": f.check, "text": f.text} for f in report.findings
        ],
    }
    if report.card.is_segmentation:
        out["pixel_share"] = report.pixel_share
    return out
