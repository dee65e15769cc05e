"""PSFHS: pubic symphysis and fetal head segmentation, through ultrabench's processor.

The Zenodo record (10969427) unpacks to `image_mha/<nnnnn>.mha` (the transperineal image, three
channels stored as a 3 x H x W volume, which ultrabench averages) and `label_mha/<nnnnn>.mha`
(H x W: 0 background, 1 pubic symphysis, 2 fetal head). The 1358 images come from 1124
patients, but no patient identifiers are published, so ultrabench splits the images 80/20 then
90/10 at random, and a patient may have images in two splits.
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

LAYOUT = "image_mha/<n>.mha and label_mha/<n>.mha (one label file per image, same name)"


def _is_root(folder: Path) -> bool:
    return (folder / "image_mha").is_dir() and (folder / "label_mha").is_dir()


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "PSFHS", LAYOUT)
    images = sorted((root / "image_mha").glob("*.mha"))
    problems = []
    if not images:
        problems.append("no images in image_mha/")
    unlabelled = [p.name for p in images if not (root / "label_mha" / p.name).is_file()]
    if unlabelled:
        problems.append(f"label_mha/ lacks {listing(unlabelled)}")
    require(problems, root, "PSFHS")
    return root


PREPARER = ultrabench_preparer(
    name="psfhs",
    dataset="psfhs_v1.0.1",
    layout=LAYOUT,
    download="https://zenodo.org/records/10969427 (PSFHS.zip, unzipped)",
    split=(
        "ultrabench 1.0.1: 80/20 train+validation/test then 90/10 train/validation at random "
        "(random_state 42; no patient identifiers), over the images in sorted file order"
    ),
    locate=locate,
)
