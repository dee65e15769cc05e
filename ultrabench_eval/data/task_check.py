"""`ubench tasks check NAME DATA_DIR`: a prepared folder against its task card.

Checks, in order: the folder reads as a valid task (split files, records, labels, classes in
train and test); images per split against the card's `split_sizes`; images per class; every
image and mask file the records name exists; no image's bytes appear in two splits (content
hash); no group (patient, source video) appears in two splits where the card has a
`group_field`. A failed check makes the command exit 1; a folder that cannot be read at all is
a user error (exit 2).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import Dataset, DatasetError, InsideCheck, open_dataset
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
    counts: dict[str, list[int]] = field(default_factory=dict)  # split -> images per class
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


def check_task(card: TaskCard, data_dir: Path) -> CheckReport:
    card, root = task_folder(card, data_dir)
    report = CheckReport(card, root / card.dataset)
    try:
        dataset = open_dataset(card, root, check_files=False)
    except DatasetError as exc:
        report.add(FAIL, "folder", "; ".join(exc.problems))
        return report
    report.add(OK, "folder", "split files and records are valid")
    _check_counts(report, dataset)
    raw = {name: _raw_records(report.folder, name) for name in SPLITS}
    present = _check_files(report, raw)
    _check_duplicates(report, dataset, present)
    _check_groups(report, dataset)
    return report


def _raw_records(folder: Path, split: str) -> list[dict]:
    # open_dataset has read and validated these; the extra mask fields are only here
    return json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))


def _check_counts(report: CheckReport, dataset: Dataset) -> None:
    card = report.card
    for name in SPLITS:
        counts = np.bincount(dataset.splits[name].labels, minlength=card.num_classes)
        report.counts[name] = [int(c) for c in counts]
    sizes = {name: sum(report.counts[name]) for name in SPLITS}
    expected = card.split_sizes
    if not expected:
        report.add(SKIP, "sizes", "the card gives no split sizes")
    else:
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
    empty = [
        f"{name}: {', '.join(card.classes[i] for i, c in enumerate(report.counts[name]) if c == 0)}"
        for name in SPLITS
        if 0 in report.counts[name]
    ]
    if empty:
        # train and test without a class fail when the folder is read; validation only warns
        report.add(WARN, "classes", f"classes without images in {'; '.join(empty)}")
    else:
        report.add(OK, "classes", "every class has images in every split")


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
            [name, sum(report.counts[name]), card.split_sizes.get(name, ""), *report.counts[name]]
            for name in SPLITS
        ]
        headers = ["split", "images", "card", *card.classes]
        lines.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    lines += [f"{f.status:<5} {f.check}: {f.text}" for f in report.findings]
    failed = sum(f.status == FAIL for f in report.findings)
    lines.append("passed" if report.passed else f"FAILED: {failed} check(s)")
    return "\n".join(lines)


def report_dict(report: CheckReport) -> dict:
    return {
        "task": report.card.name,
        "folder": str(report.folder),
        "passed": report.passed,
        "classes": list(report.card.classes),
        "counts": report.counts,
        "split_sizes": report.card.split_sizes,
        "findings": [
            {"status": f.status, "check": f.check, "text": f.text} for f in report.findings
        ],
    }
