"""Open Kidney Ultrasound: kidney capsule segmentation, through ultrabench's processor.

The images come on registration (rsingla.ca/kidneyUS) as `images/<n>_<file id>_anon.png`; the
annotations are the kidneyUS repository's `labels/` folder: `reviewed_labels_1.csv`, a VGG
Image Annotator export with one row per annotated region (the image's Quality, View and
Comments in `file_attributes`), and the masks drawn from it, `reviewed_masks_1/capsule/<image>`
(0 background, 1 capsule) and `reviewed_masks_1/regions/<image>` (0-3). ultrabench uses the
first sonographer's annotations, keeps the first image of each file id (the archive holds 20
duplicates under other patient numbers) and splits 80/20 then 90/10, stratified by view.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

LABELS = "labels/reviewed_labels_1.csv"
MASKS = "labels/reviewed_masks_1"
COLUMNS = ("filename", "file_attributes", "region_attributes", "region_shape_attributes")
ATTRIBUTES = ("View", "Comments")  # the processor stratifies by the view and reads the comments
LAYOUT = (
    "images/<n>_<file id>_anon.png beside labels/ from github.com/rsingla92/kidneyUS (with "
    "reviewed_labels_1.csv and reviewed_masks_1/{capsule,regions}/)"
)


def _is_root(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / LABELS).is_file()


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "Open Kidney", LAYOUT)
    problems: list[str] = []
    for name in _kept_images(root, problems):
        missing = [
            where
            for where in (f"images/{name}", f"{MASKS}/capsule/{name}", f"{MASKS}/regions/{name}")
            if not (root / where).is_file()
        ]
        problems += [f"{where} missing" for where in missing]
    require(problems, root, "Open Kidney")
    return root


def _kept_images(root: Path, problems: list[str]) -> list[str]:
    """The images the processor keeps (the first row of each file id), in file order; what it
    cannot read in the label file goes to `problems`."""
    try:
        with (root / LABELS).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{LABELS} cannot be read ({exc})")
        return []
    absent = [c for c in COLUMNS if rows and c not in rows[0]]
    if not rows or absent:
        problems.append(f"{LABELS} lacks the column(s) {', '.join(absent or COLUMNS)}")
        return []
    kept, seen, unreadable = [], set(), []
    for row in rows:
        name = row["filename"]
        parts = name.split("_")
        if len(parts) < 2:
            unreadable.append(f"{name} (no _<file id>_ in the name)")
            continue
        try:
            attributes = ast.literal_eval(row["file_attributes"])
        except (ValueError, SyntaxError):
            attributes = None
        if not isinstance(attributes, dict) or not all(
            isinstance(attributes.get(key), str) for key in ATTRIBUTES
        ):
            unreadable.append(f"{name} (file_attributes without {' and '.join(ATTRIBUTES)})")
            continue
        if parts[1] not in seen:
            seen.add(parts[1])
            kept.append(name)
    if unreadable:
        problems.append(f"{LABELS} rows: {listing(sorted(set(unreadable)))}")
    return kept


PREPARER = ultrabench_preparer(
    name="open_kidney",
    dataset="open_kidney_v1.0.1",
    layout=LAYOUT,
    download=(
        "https://rsingla.ca/kidneyUS/ (the images, on registration) and "
        "https://github.com/rsingla92/kidneyUS (its labels/ folder)"
    ),
    split=(
        "ultrabench 1.0.1: sonographer 1's annotations, one image per file id, stratified by "
        "view 80/20 train+validation/test then 90/10 train/validation (random_state 42)"
    ),
    locate=locate,
)
