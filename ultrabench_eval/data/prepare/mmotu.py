"""MMOTU (OTU_2d) through ultrabench's processor: ovarian tumour type (8 classes) and tumour
segmentation.

The archive unpacks to `OTU_2d/` (possibly inside `MMOTU/`) holding `images/<n>.JPG`,
`annotations/<n>.PNG` (colour-coded tumour types) and `annotations/<n>_binary.PNG` (the tumour:
class indices 0/1, as MMOTU's own segmentation configs read them), the name lists `train.txt`
and `val.txt` and the class lists `train_cls.txt` and `val_cls.txt` (`<n>.JPG  <label>`, two
spaces). ultrabench uses the official validation list as the test set and splits the training
list 80/20 into train and validation. Its records name the binary mask (copied unchanged) and a
multi-class one it derives from the colours (0 background, 1-8 the tumour type + 1): tasks
`mmotu` and `mmotu-seg` share the one folder.
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

LISTS = ("train.txt", "val.txt", "train_cls.txt", "val_cls.txt")
LAYOUT = (
    "OTU_2d/ with images/<n>.JPG, annotations/<n>.PNG and <n>_binary.PNG, train.txt, val.txt, "
    "train_cls.txt and val_cls.txt"
)


def _is_root(folder: Path) -> bool:
    otu = folder / "OTU_2d"
    return (otu / "images").is_dir() and all((otu / name).is_file() for name in LISTS)


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "MMOTU", LAYOUT)
    otu = root / "OTU_2d"
    problems = []
    for prefix in ("train", "val"):
        names = [n.strip() for n in (otu / f"{prefix}.txt").read_text().splitlines() if n.strip()]
        labelled = {
            line.split()[0].removesuffix(".JPG")
            for line in (otu / f"{prefix}_cls.txt").read_text().splitlines()
            if line.strip()
        }
        for kind, path in (
            ("images", "images/{}.JPG"),
            ("annotations", "annotations/{}.PNG"),
            ("binary masks", "annotations/{}_binary.PNG"),
        ):
            missing = [n for n in names if not (otu / path.format(n)).is_file()]
            if missing:
                problems.append(f"{prefix}.txt {kind} missing: {listing(missing)}")
        unlabelled = [n for n in names if n not in labelled]
        if unlabelled:
            problems.append(f"{prefix}.txt names not in {prefix}_cls.txt: {listing(unlabelled)}")
    require(problems, root, "MMOTU")
    return root


PREPARER = ultrabench_preparer(
    name="mmotu",
    dataset="mmotu_v1.0.1",
    layout=LAYOUT,
    download="https://github.com/cv516Buaa/MMOTU_DS2Net (the OTU_2d archive linked there)",
    split=(
        "ultrabench 1.0.1: the official val list is the test set; the official train list is "
        "split 80/20, stratified, into train/validation (random_state 42)"
    ),
    locate=locate,
)
