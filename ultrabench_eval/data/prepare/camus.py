"""CAMUS through ultrabench's processor: echocardiography image quality (poor, medium, good)
and cardiac structure segmentation.

The CREATIS archive unpacks to `database_nifti/patient<NNNN>/` with, per view (2CH, 4CH),
`patient<NNNN>_<view>_half_sequence.nii.gz`, its `_gt` segmentation and `Info_<view>.cfg`
("Key: value" lines, of which ultrabench reads ED, ES, NbFrame, Sex, Age, ImageQuality, EF and
FrameRate). Every frame of the half sequences becomes an image labelled with the view's quality
and, under the record key `mask`, the frame of the `_gt` file (0 background, 1 left ventricle,
2 myocardium, 3 left atrium): tasks `camus` and `camus-seg` share the one folder.
"""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.prepare.base import find_root, require
from ultrabench_eval.data.prepare.ultrabench import ultrabench_preparer

QUALITIES = ("Poor", "Medium", "Good")
FIELDS = ("ED", "ES", "NbFrame", "Sex", "Age", "ImageQuality", "EF", "FrameRate")
LAYOUT = (
    "database_nifti/patient<NNNN>/ holding patient<NNNN>_<2CH|4CH>_half_sequence.nii.gz, "
    "its _gt file and Info_<2CH|4CH>.cfg"
)


def _is_root(folder: Path) -> bool:
    return any((folder / "database_nifti").glob("patient*/Info_*.cfg"))


def _cfg(path: Path) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in path.read_text(errors="replace").splitlines())
    return {p[0].strip(): p[1].strip() for p in pairs if len(p) == 2}


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "CAMUS", LAYOUT)
    problems = []
    for cfg in sorted((root / "database_nifti").glob("*/Info_*.cfg")):
        patient, view = cfg.parent.name, cfg.stem.removeprefix("Info_")
        where = f"{patient}/{cfg.name}"
        values = _cfg(cfg)
        missing = [f for f in FIELDS if f not in values]
        if missing:
            problems.append(f"{where} lacks {', '.join(missing)}")
        elif values["ImageQuality"] not in QUALITIES:
            problems.append(f"{where}: ImageQuality {values['ImageQuality']!r} not in {QUALITIES}")
        for suffix in ("", "_gt"):
            name = f"{patient}_{view}_half_sequence{suffix}.nii.gz"
            if not (cfg.parent / name).is_file():
                problems.append(f"{patient}/{name} missing")
    require(problems, root, "CAMUS")
    return root


PREPARER = ultrabench_preparer(
    name="camus",
    dataset="camus_v1.0.1",
    layout=LAYOUT,
    download=(
        "https://humanheart-project.creatis.insa-lyon.fr/database/#collection/"
        "6373703d73e9f0047faa1bc8 (the CAMUS collection, unzipped)"
    ),
    split=(
        "ultrabench 1.0.1: 80/20 train+validation/test, then 90/10 train/validation, by "
        "patient (GroupShuffleSplit, random_state 42)"
    ),
    locate=locate,
)
