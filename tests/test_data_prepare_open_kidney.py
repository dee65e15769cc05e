"""Open Kidney through ultrabench's processor: images, the VIA label file and sonographer 1's
masks to the capsule segmentation task."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from raw_trees_segmentation import mask_values, prepare_and_read, split_sizes, write_open_kidney

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import open_kidney


def test_raw_tree_to_capsule_segmentation_task(tmp_path):
    sizes = write_open_kidney(tmp_path / "raw" / "kidneyUS")
    prepared, dataset = prepare_and_read("open-kidney-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:open_kidney" and split_sizes(dataset) == sizes
    assert mask_values(dataset) == {0, 1}
    images = {r.image: r for split in dataset.splits.values() for r in split.records}
    # the image repeating a file id under another leading number is dropped, its first kept
    assert "images/31_IM-0003-0001_anon.png" not in images
    assert "images/4_IM-0003-0001_anon.png" in images
    # an image the sonographer did not outline keeps an empty mask
    empty = images["images/5_IM-0004-0001_anon.png"].mask
    assert not np.asarray(Image.open(dataset.root / empty)).any()
    # every view is in every split (the split is stratified by view)
    for name in ("train", "validation", "test"):
        views = {r["view"] for r in json.loads((dataset.root / f"{name}.json").read_text())}
        assert views == {"Longitudinal", "Transverse", "Other"}, name


def test_missing_mask_and_unreadable_row_are_named(tmp_path):
    write_open_kidney(tmp_path)
    (tmp_path / "labels/reviewed_masks_1/capsule/7_IM-0006-0001_anon.png").unlink()
    labels = tmp_path / "labels" / "reviewed_labels_1.csv"
    rows = list(csv.DictReader(labels.open()))
    for row in rows:
        if row["filename"] == "9_IM-0008-0001_anon.png":
            row["file_attributes"] = '{"Quality": "Fair"}'
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError) as error:
        open_kidney.locate(tmp_path)
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert "labels/reviewed_masks_1/capsule/7_IM-0006-0001_anon.png missing" in message
    assert "9_IM-0008-0001_anon.png (file_attributes without View and Comments)" in message


def test_images_without_the_labels_folder_are_rejected(tmp_path):
    write_open_kidney(tmp_path / "kidneyUS")
    shutil.rmtree(tmp_path / "kidneyUS" / "labels")
    with pytest.raises(UserError, match="does not hold the Open Kidney download: expected images/"):
        open_kidney.locate(tmp_path)
