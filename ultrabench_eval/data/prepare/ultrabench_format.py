"""Writing the UltraBench format from our own preparers, the way ultrabench's processors do:
grayscale PNG images (the mean of the colour channels), 0/1 PNG masks, and `train.json`,
`validation.json` and `test.json` listing records with relative paths and an integer `label`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from ultrabench_eval.core.atomic import write_json, write_with
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.scan_mask import derive_scan_mask

SPLIT_FILES = {"train": "train.json", "validation": "validation.json", "test": "test.json"}


def read_gray(path: Path) -> np.ndarray:
    """A uint8 [H, W] image; colour images become the mean of their channels (as ultrabench
    does), and an alpha channel is dropped."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255)
    return array.astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    write_with(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def write_image_and_scan_mask(folder: Path, stem: str, gray: np.ndarray) -> dict[str, str]:
    """images/<stem>.png and masks/scan/<stem>.png (derived: the dataset ships none)."""
    image, mask = f"images/{stem}.png", f"masks/scan/{stem}.png"
    save_png(folder / image, gray)
    save_png(folder / mask, derive_scan_mask(gray).astype(np.uint8))
    return {"image": image, "scan_mask": mask}


def write_splits(folder: Path, splits: dict[str, list[dict]]) -> None:
    for split, records in splits.items():
        write_json(folder / SPLIT_FILES[split], sorted(records, key=lambda r: r["image"]))


def grouped_split(groups: Sequence[object], labels: Sequence[int], seed: int) -> dict[object, str]:
    """Each group's split: 20 % of the groups to test, then 10 % of the rest to validation,
    stratified by the group's label (ultrabench's 7:1:2 recipe, applied to groups)."""
    train_val, test = train_test_split(
        list(groups), test_size=0.2, random_state=seed, shuffle=True, stratify=list(labels)
    )
    label_of = dict(zip(groups, labels, strict=True))
    train, validation = train_test_split(
        train_val,
        test_size=0.1,
        random_state=seed,
        shuffle=True,
        stratify=[label_of[g] for g in train_val],
    )
    split_of = {g: "train" for g in train}
    split_of.update({g: "validation" for g in validation})
    split_of.update({g: "test" for g in test})
    return split_of
