"""GBCU (Gallbladder Cancer Ultrasound): normal, benign, malignant, through ultrabench's processor.

The download unpacks to a folder holding `imgs/` (the JPEG images), `train.txt` and `test.txt`
(CSV lines `<image>,<label>`, label 0 normal, 1 benign, 2 malignant) and `bbox_annot.json`
(per image: `dim` and `bbs`, a list of `[label, [x0, y0, x1, y1]]`). The official test set is
kept; 10 % of the training set becomes validation.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

FILES = ("train.txt", "test.txt", "bbox_annot.json")
LAYOUT = "imgs/<image>.jpg, train.txt and test.txt (<image>,<label> lines) and bbox_annot.json"


def _is_root(folder: Path) -> bool:
    return (folder / "imgs").is_dir() and all((folder / f).is_file() for f in FILES)


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "GBCU", LAYOUT)
    try:
        boxes = json.loads((root / "bbox_annot.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{root / 'bbox_annot.json'} is not readable JSON ({exc})") from None
    problems = []
    for split in ("train", "test"):
        with (root / f"{split}.txt").open(newline="") as handle:
            rows = [r for r in csv.reader(handle) if r]
        bad = [",".join(r) for r in rows if len(r) != 2 or r[1].strip() not in ("0", "1", "2")]
        if bad:
            problems.append(f"{split}.txt lines not '<image>,<0|1|2>': {listing(bad)}")
        names = [r[0] for r in rows if len(r) == 2]
        missing = [n for n in names if not (root / "imgs" / n).is_file()]
        if missing:
            problems.append(f"{split}.txt images not in imgs/: {listing(missing)}")
        unboxed = [n for n in names if n not in boxes]
        if unboxed:
            problems.append(f"{split}.txt images without bbox_annot.json entry: {listing(unboxed)}")
    require(problems, root, "GBCU")
    return root


PREPARER = ultrabench_preparer(
    name="gbcu",
    dataset="gbcu_v1.0.1",
    layout=LAYOUT,
    download="https://gbc-iitd.github.io/data/gbcu (the dataset archive, unzipped)",
    split=(
        "ultrabench 1.0.1: the official test set; 10 % of the official training set, "
        "stratified, becomes validation (random_state 42); no patient identifiers exist"
    ),
    locate=locate,
)
