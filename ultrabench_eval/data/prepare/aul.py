"""AUL (Annotated Ultrasound Liver): liver mass classification, through ultrabench's processor.

The Zenodo record (7272660) unpacks to one folder per class, `Benign/`, `Malignant/` and
`Normal/`, each holding `image/<n>.jpg` and the polygon outlines `segmentation/outline/<n>.json`
(the scan region), `segmentation/liver/<n>.json` and, for masses, `segmentation/mass/<n>.json`.
ultrabench writes two folders from it; the task is the mass one (3 classes).
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

CLASS_FOLDERS = ("Normal", "Benign", "Malignant")
LAYOUT = (
    "folders Benign/, Malignant/ and Normal/, each with image/<n>.jpg and "
    "segmentation/{outline,liver,mass}/<n>.json"
)


def _is_root(folder: Path) -> bool:
    return all((folder / name / "image").is_dir() for name in CLASS_FOLDERS)


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "AUL", LAYOUT)
    problems = []
    for name in CLASS_FOLDERS:
        images = sorted((root / name / "image").glob("*.jpg"))
        if not images:
            problems.append(f"no images in {name}/image/")
        # every image needs its scan outline (229 and 306 carry the liver's there instead)
        problems += [
            f"{name}/segmentation/outline/{image.stem}.json missing"
            for image in images
            if not (root / name / "segmentation" / "outline" / f"{image.stem}.json").is_file()
        ]
    require(problems, root, "AUL")
    return root


PREPARER = ultrabench_preparer(
    name="aul",
    dataset="aul_mass_v1.0.1",
    output_attribute="OUTPUT_NAME_MASS",
    layout=LAYOUT,
    download="https://zenodo.org/records/7272660 (unzip every archive into one folder)",
    split=(
        "ultrabench 1.0.1: stratified 80/20 train+validation/test, then 90/10 train/validation "
        "(scikit-learn, random_state 42), over the images in sorted file order"
    ),
    locate=locate,
)
