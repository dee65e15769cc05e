"""Writing the UltraBench format: grayscale images, 0/1 masks, sorted split files, group splits."""

import json

import numpy as np
from PIL import Image

from ultrabench_eval.data.prepare.ultrabench_format import (
    grouped_split,
    read_gray,
    write_image_and_scan_mask,
    write_splits,
)


def test_colour_images_become_the_channel_mean(tmp_path):
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 30, 60, 90, 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    gray = read_gray(tmp_path / "a.png")
    assert gray.shape == (4, 5) and gray.dtype == np.uint8 and (gray == 60).all()


def test_image_and_scan_mask_are_written_as_png(tmp_path):
    image = np.zeros((40, 40), dtype=np.uint8)
    image[5:35, 8:30] = 120
    record = write_image_and_scan_mask(tmp_path, "case_1", image)
    assert record == {"image": "images/case_1.png", "scan_mask": "masks/scan/case_1.png"}
    mask = np.asarray(Image.open(tmp_path / record["scan_mask"]))
    assert set(np.unique(mask)) == {0, 1} and mask[20, 20] == 1 and mask[2, 2] == 0
    assert (np.asarray(Image.open(tmp_path / record["image"])) == image).all()


def test_split_files_are_sorted_by_image(tmp_path):
    write_splits(tmp_path, {"train": [{"image": "b", "label": 0}, {"image": "a", "label": 1}]})
    assert [r["image"] for r in json.loads((tmp_path / "train.json").read_text())] == ["a", "b"]


def test_groups_split_7_1_2_stratified_and_reproducibly():
    groups = [f"p{i}" for i in range(100)]
    labels = [int(i < 30) for i in range(100)]
    split = grouped_split(groups, labels, seed=3)
    assert split == grouped_split(groups, labels, seed=3)
    assert split != grouped_split(groups, labels, seed=4)
    sizes = {s: [g for g in groups if split[g] == s] for s in ("train", "validation", "test")}
    assert {s: len(v) for s, v in sizes.items()} == {"train": 72, "validation": 8, "test": 20}
    positives = {s: sum(labels[groups.index(g)] for g in v) for s, v in sizes.items()}
    assert positives == {"train": 22, "validation": 2, "test": 6}
