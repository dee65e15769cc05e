"""BUS-BRA: benign vs malignant breast lesions (our preparer; ultrabench has none).

The Zenodo record (8231412) unpacks to `BUSBRA/` holding `Images/bus_<NNNN>-<s>.png`,
`Masks/mask_<NNNN>-<s>.png` (lesion outlines), `bus_data.csv` (one row per image: `ID`, `Case`
(the patient), `Histology`, `Pathology` (benign or malignant), `BIRADS`, `Device`, `Width`,
`Height`, `Side`, `BBOX`) and the 5- and 10-fold CSVs, which are not used.

How the splits are made (the US-JEPA paper does not publish its derivation): the dataset has
1875 images of 1064 patients, 722 with a benign and 342 with a malignant lesion, and the paper's
sizes (765 / 86 / 213) and class counts (722 / 342) are exactly those patient counts under a
7:1:2 split. So one image per patient is kept, the first of the patient's rows in
`bus_data.csv`, and the patients are split 80/20 into train+validation and test, then 90/10
into train and validation, stratified by pathology with seed 42 (ultrabench's recipe), which
gives 765 / 86 / 213. Scan masks are derived from the images (the dataset has none).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.base import Preparer, find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench_format import (
    grouped_split,
    read_gray,
    save_png,
    write_image_and_scan_mask,
    write_splits,
)

DATASET = "busbra_v1"
SEED = 42
CLASSES = ("benign", "malignant")
COLUMNS = ("ID", "Case", "Pathology")
LAYOUT = "BUSBRA/ with bus_data.csv, Images/bus_<NNNN>-<s>.png and Masks/mask_<NNNN>-<s>.png"


def _is_root(folder: Path) -> bool:
    return (folder / "bus_data.csv").is_file() and (folder / "Images").is_dir()


def _mask_name(image_id: str) -> str:
    return "mask_" + image_id.removeprefix("bus_") + ".png"


def read_rows(root: Path) -> list[dict[str, str]]:
    try:
        with (root / "bus_data.csv").open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {root / 'bus_data.csv'}: {exc}") from None
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise UserError(
            f"{root / 'bus_data.csv'} has no rows or lacks column(s) {', '.join(missing)} "
            f"(expected {', '.join(COLUMNS)}, ...)"
        )
    return rows


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "BUS-BRA", LAYOUT)
    rows = read_rows(root)
    problems = []
    bad = [r["ID"] for r in rows if r["Pathology"].strip().lower() not in CLASSES]
    if bad:
        problems.append(f"Pathology not benign/malignant for {listing(bad)}")
    if any(not r["Case"].strip() for r in rows):
        problems.append("rows without a Case (patient) number")
    missing = [r["ID"] for r in rows if not (root / "Images" / f"{r['ID']}.png").is_file()]
    if missing:
        problems.append(f"Images/<ID>.png missing for {listing(missing)}")
    no_mask = [r["ID"] for r in rows if not (root / "Masks" / _mask_name(r["ID"])).is_file()]
    if no_mask:
        problems.append(f"Masks/mask_<NNNN>-<s>.png missing for {listing(no_mask)}")
    require(problems, root, "BUS-BRA")
    return root


def one_image_per_case(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first row of each case, in file order."""
    chosen: dict[str, dict[str, str]] = {}
    for row in rows:
        chosen.setdefault(row["Case"].strip(), row)
    return list(chosen.values())


def write(root: Path, out: Path) -> None:
    rows = one_image_per_case(read_rows(root))
    cases = [r["Case"].strip() for r in rows]
    labels = [CLASSES.index(r["Pathology"].strip().lower()) for r in rows]
    try:
        split_of = grouped_split(cases, labels, SEED)
    except ValueError as exc:
        raise UserError(
            f"cannot split the {len(cases)} BUS-BRA patients in {root}: {exc}"
        ) from None
    folder = out / DATASET
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for row, case, label in zip(rows, cases, labels, strict=True):
        ident = row["ID"]
        record = write_image_and_scan_mask(
            folder, ident, read_gray(root / "Images" / f"{ident}.png")
        )
        lesion = read_gray(root / "Masks" / _mask_name(ident)) > 0
        record["tumor_mask"] = f"masks/tumor/{ident}.png"
        save_png(folder / record["tumor_mask"], lesion.astype(np.uint8))
        record.update(
            patient=int(case) if case.isdigit() else case,
            pathology=CLASSES[label],
            histology=row.get("Histology", ""),
            birads=row.get("BIRADS", ""),
            device=row.get("Device", ""),
            label=label,
        )
        splits[split_of[case]].append(record)
    write_splits(folder, splits)


PREPARER = Preparer(
    id="ubench:busbra",
    dataset=DATASET,
    layout=LAYOUT,
    download="https://zenodo.org/records/8231412 (BUSBRA.zip, unzipped)",
    split=(
        "ultrabench-eval: one image per patient (first row in bus_data.csv); patients split "
        "80/20 then 90/10, stratified by pathology, seed 42 (765/86/213 on the full dataset)"
    ),
    locate=locate,
    write=write,
)
