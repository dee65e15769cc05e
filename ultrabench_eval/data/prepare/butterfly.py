"""Butterfly (MIT GrandHack 2018): 9 scan regions, through ultrabench's processor.

The three release archives unpack to `training1/`, `training2/` and `test/` (or, with the
release's download script, `training/` and `test/`), each holding
`<patient>/<region>/<frame>.png`. ultrabench keeps the official test patients and splits the
training patients 80/20 into train and validation.
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

REGIONS = (
    "carotid",
    "2ch",
    "lungs",
    "ivc",
    "4ch",
    "bladder",
    "thyroid",
    "plax",
    "morisons_pouch",
)
LAYOUT = (
    "folders training1/, training2/ (or training/) and test/, each with "
    "<patient number>/<region>/<frame>.png"
)


def _subsets(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_root(folder: Path) -> bool:
    names = [p.name for p in _subsets(folder)]
    return any("training" in n for n in names) and "test" in names


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "Butterfly", LAYOUT)
    problems = []
    for subset in _subsets(root):
        # ultrabench counts any folder not named like "training*" as test data
        if "training" not in subset.name and subset.name != "test":
            problems.append(f"unexpected folder {subset.name}/ (only training*/ and test/)")
            continue
        for patient in _subsets(subset):
            if not patient.name.isdigit():
                problems.append(f"{subset.name}/{patient.name}/ is not a patient number")
            unknown = [r.name for r in _subsets(patient) if r.name not in REGIONS]
            if unknown:
                problems.append(
                    f"{subset.name}/{patient.name}/ has unknown region(s) {listing(unknown)} "
                    f"(known: {', '.join(REGIONS)})"
                )
    if not list(root.glob("*/*/*/*.png")):
        problems.append("no <subset>/<patient>/<region>/*.png images")
    require(problems, root, "Butterfly")
    return root


PREPARER = ultrabench_preparer(
    name="butterfly",
    dataset="butterfly_v1.0.1",
    layout=LAYOUT,
    download=(
        "https://github.com/ButterflyNetwork/MITGrandHack2018/releases/tag/v.0.0.1 "
        "(butterfly_dataset_test, _training1 and _training2 .tar.gz, unpacked side by side)"
    ),
    split=(
        "ultrabench 1.0.1: the official test patients; training patients split 80/20 into "
        "train/validation by patient (GroupShuffleSplit, random_state 42)"
    ),
    locate=locate,
)
