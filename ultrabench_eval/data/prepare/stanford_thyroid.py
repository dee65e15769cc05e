"""Stanford Thyroid Ultrasound Cine-clip: thyroid nodule segmentation, through ultrabench's
processor.

The Stanford AIMI download holds `dataset.hdf5`, every frame of every cine clip (`image` and
`mask`, N x H x W, the mask 0/255, and `annot_id`, the clip's patient as `<n>_`), and
`metadata.csv`, one row per `annot_id` (age, sex, location, lesion size, TI-RADS scores,
histopathology). ultrabench keeps the 105 patients scanned with a convex probe (a list in the
processor), maps the masks to 0/1 and splits by patient 80/20 then 90/10.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import processor_module, ultrabench_preparer

ARRAYS = ("image", "mask", "annot_id")
COLUMNS = (
    "annot_id",
    "age",
    "sex",
    "location",
    "size_x",
    "size_y",
    "size_z",
    "ti-rads_level",
    "ti-rads_composition",
    "ti-rads_echogenicity",
    "ti-rads_shape",
    "ti-rads_margin",
    "ti-rads_echogenicfoci",
    "histopath_diagnosis",
)
LAYOUT = "dataset.hdf5 (image, mask and annot_id arrays) and metadata.csv (one row per annot_id)"


def _is_root(folder: Path) -> bool:
    return (folder / "dataset.hdf5").is_file() and (folder / "metadata.csv").is_file()


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "Stanford Thyroid", LAYOUT)
    problems: list[str] = []
    clips = _clip_ids(root / "dataset.hdf5", problems)
    rows = _metadata_rows(root / "metadata.csv", problems)
    if clips is not None and rows is not None:
        # the processor asserts both: one metadata row per clip, and every listed patient
        unmatched = sorted(c for c in clips if rows[c] != 1)
        if unmatched:
            problems.append(f"metadata.csv has no single row for annot_id {listing(unmatched)}")
        patients = {int(c.removesuffix("_")) for c in clips if c.removesuffix("_").isdigit()}
        odd = sorted(c for c in clips if not c.removesuffix("_").isdigit())
        if odd:
            problems.append(f"annot_id not of the form <number>_: {listing(odd)}")
        absent = sorted(set(processor_module("stanford_thyroid").PATIENTS) - patients)
        if absent:
            problems.append(f"dataset.hdf5 has no frames of patient(s) {listing(absent)}")
    require(problems, root, "Stanford Thyroid")
    return root


def _clip_ids(path: Path, problems: list[str]) -> set[str] | None:
    import h5py

    try:
        with h5py.File(path, "r") as data:
            absent = [name for name in ARRAYS if name not in data]
            if absent:
                problems.append(f"dataset.hdf5 lacks the array(s) {', '.join(absent)}")
                return None
            lengths = {len(data[name]) for name in ARRAYS}
            if len(lengths) > 1:
                problems.append("dataset.hdf5's image, mask and annot_id differ in length")
                return None
            return set(data["annot_id"].asstr()[:])
    except (OSError, TypeError, ValueError) as exc:
        problems.append(f"dataset.hdf5 cannot be read ({' '.join(str(exc).split())})")
        return None


def _metadata_rows(path: Path, problems: list[str]) -> Counter | None:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if absent:
                problems.append(f"metadata.csv lacks the column(s) {listing(absent)}")
                return None
            return Counter(row["annot_id"] for row in reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"metadata.csv cannot be read ({exc})")
        return None


PREPARER = ultrabench_preparer(
    name="stanford_thyroid",
    dataset="stanford_thyroid_v1.0.1",
    layout=LAYOUT,
    download=(
        "https://stanfordaimi.azurewebsites.net/datasets/a72f2b02-7b53-4c5d-963c-d7253220bfd5 "
        "(Thyroid Ultrasound Cine-clip, on agreement)"
    ),
    split=(
        "ultrabench 1.0.1: the 105 patients scanned with a convex probe, by patient "
        "(GroupShuffleSplit) 80/20 train+validation/test then 90/10 train/validation "
        "(random_state 42)"
    ),
    locate=locate,
)
