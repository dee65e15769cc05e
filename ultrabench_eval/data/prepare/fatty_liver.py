"""Fatty liver (B-mode NAFLD dataset): normal vs fatty liver, through ultrabench's processor.

The Zenodo record (1009146) is one MATLAB file, `dataset_liver_bmodes_steatosis_assessment_IJCARS
.mat`, holding a 1 x 55 struct array `data` with fields `id`, `class` (0 normal, 1 NAFLD: 5 % or
more steatotic hepatocytes), `fat` (percentage) and `images` (10 frames per patient).
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

MAT_FILE = "dataset_liver_bmodes_steatosis_assessment_IJCARS.mat"
LAYOUT = f"the file {MAT_FILE} (or a folder holding it)"


def locate(raw: Path) -> Path:
    if raw.is_file():
        if raw.suffix.lower() != ".mat":
            raise UserError(f"{raw} is not a .mat file: expected {LAYOUT}")
        return raw
    if not raw.is_dir():
        raise UserError(f"raw data {raw} does not exist (expected {LAYOUT})")
    found = sorted(raw.rglob(MAT_FILE))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} copies of"
        raise UserError(f"{raw} holds {what} {MAT_FILE}: expected {LAYOUT}")
    return found[0]


PREPARER = ultrabench_preparer(
    name="fatty_liver",
    dataset="fatty_liver_v1.0.1",
    layout=LAYOUT,
    download="https://zenodo.org/records/1009146",
    split=(
        "ultrabench 1.0.1: 80/20 train+validation/test, then 90/10 train/validation, by "
        "patient (GroupShuffleSplit, random_state 0)"
    ),
    locate=locate,
)
