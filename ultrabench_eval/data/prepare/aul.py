"""AUL (Annotated Ultrasound Liver) through ultrabench's processor: mass classification, mass
segmentation and liver segmentation.

The Zenodo record (7272660) unpacks to one folder per class, `Benign/`, `Malignant/` and
`Normal/`, each holding `image/<n>.jpg` and the polygon outlines `segmentation/outline/<n>.json`
(the scan region), `segmentation/liver/<n>.json` and, for masses, `segmentation/mass/<n>.json`.
One processor run writes two folders from it: `aul_mass_v1.0.1`, every image with its mass mask
(empty for normal images), which tasks `aul` and `aul-mass-seg` share, and `aul_liver_v1.0.1`,
the same split less the one image without a liver outline (374), for task `aul-liver-seg`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

CLASS_FOLDERS = ("Normal", "Benign", "Malignant")
LAYOUT = (
    "folders Benign/, Malignant/ and Normal/, each with image/<n>.jpg and "
    "segmentation/{outline,liver,mass}/<n>.json"
)
DOWNLOAD = "https://zenodo.org/records/7272660 (unzip every archive into one folder)"
SPLIT = (
    "ultrabench 1.0.1: stratified 80/20 train+validation/test, then 90/10 train/validation "
    "(scikit-learn, random_state 42), over the images in sorted file order"
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
        # every image needs its scan outline (229 and 306 carry the liver's there instead);
        # an image with a mass needs the mass outline, or the mass folder's record has no mask
        parts = ("outline",) if name == "Normal" else ("outline", "mass")
        problems += [
            f"{name}/segmentation/{part}/{image.stem}.json missing"
            for image in images
            for part in parts
            if not (root / name / "segmentation" / part / f"{image.stem}.json").is_file()
        ]
    require(problems, root, "AUL")
    return root


PREPARER = ultrabench_preparer(
    name="aul",
    dataset="aul_mass_v1.0.1",
    output_attribute="OUTPUT_NAME_MASS",
    layout=LAYOUT,
    download=DOWNLOAD,
    split=SPLIT,
    locate=locate,
)

# The same processor run, keeping its liver folder; its own id, since tasks name preparers by id
LIVER_PREPARER = replace(
    ultrabench_preparer(
        name="aul",
        dataset="aul_liver_v1.0.1",
        output_attribute="OUTPUT_NAME_LIVER",
        layout=LAYOUT,
        download=DOWNLOAD,
        split=f"{SPLIT}; the images without a liver outline are then left out",
        locate=locate,
    ),
    id="ultrabench:aul-liver",
)
