"""POCUS (covid19_ultrasound): regular, pneumonia, COVID-19, through ultrabench's processor.

The raw data is the `jannisborn/covid19_ultrasound` repository itself (a clone or its ZIP):
ultrabench reads the convex-probe files `data/pocus_images/convex/<Class>_*.{png,jpg}` and
`data/pocus_videos/convex/<Class>_*.{mp4,avi,mov,mpeg,m4v,gif}`, the class coming from the file
name's prefix (Reg, Pne(u), Cov). Videos give up to 30 frames at 3 Hz; splits are by source file.
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

IMAGES = "data/pocus_images/convex"
VIDEOS = "data/pocus_videos/convex"
LAYOUT = f"the covid19_ultrasound repository root, with {IMAGES}/ and {VIDEOS}/"


def _is_root(folder: Path) -> bool:
    return (folder / IMAGES).is_dir() and (folder / VIDEOS).is_dir()


def locate(raw: Path) -> Path:
    return find_root(raw, _is_root, "POCUS (covid19_ultrasound)", LAYOUT)


PREPARER = ultrabench_preparer(
    name="pocus",
    dataset="pocus_v1.0.1",
    layout=LAYOUT,
    download=(
        "https://github.com/jannisborn/covid19_ultrasound (the repository; its data change "
        "over time)"
    ),
    split=(
        "ultrabench 1.0.1: 80/20 train+validation/test, then 90/10 train/validation, by "
        "source file (GroupShuffleSplit, random_state 42)"
    ),
    locate=locate,
)
