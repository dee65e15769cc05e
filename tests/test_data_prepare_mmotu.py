"""MMOTU through ultrabench's processor: OTU_2d lists and masks to a checked task."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from raw_trees import prepare_check_bench, write_mmotu
from raw_trees_segmentation import mask_values, prepare_and_read, split_sizes, write_mmotu_binary

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.prepare import mmotu


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_mmotu(tmp_path / "raw" / "MMOTU")  # OTU_2d inside MMOTU/ is found
    _, checked, bench = prepare_check_bench("mmotu", tmp_path / "raw", sizes, tmp_path, monkeypatch)
    # binary and multi-class tumour masks and the scan mask are all checked
    assert "ok    files: 48 images and 144 masks present" in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)


def test_missing_binary_mask_and_unlabelled_image_are_named(tmp_path):
    write_mmotu(tmp_path, train_per_class=1)
    (tmp_path / "OTU_2d" / "annotations" / "3_binary.PNG").unlink()
    cls = tmp_path / "OTU_2d" / "val_cls.txt"
    cls.write_text("".join(cls.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(UserError) as error:
        mmotu.locate(tmp_path)
    message = str(error.value)
    assert "train.txt binary masks missing: 3" in message
    assert "val.txt names not in val_cls.txt: 9" in message


def test_binary_tumour_masks_for_mmotu_seg(tmp_path):

    sizes = write_mmotu_binary(tmp_path / "raw" / "MMOTU")
    prepared, dataset = prepare_and_read("mmotu-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:mmotu" and split_sizes(dataset) == sizes
    assert mask_values(dataset) == {0, 1}  # the palette PNGs' indices, copied unchanged
    # the binary mask is the tumour of the multi-class one, whose value is the type + 1
    labels = open_dataset(TASKS.get("mmotu"), tmp_path / "data")  # the same folder
    record = labels.splits["test"].records[3]
    multiclass = json.loads((dataset.root / "test.json").read_text())
    derived = next(r for r in multiclass if r["image"] == record.image)
    binary = np.asarray(Image.open(dataset.root / derived["tumor_mask_binary"]))
    types = np.asarray(Image.open(dataset.root / derived["tumor_mask_multiclass"]))
    assert binary.any() and np.array_equal(types > 0, binary == 1)
    assert set(np.unique(types[binary == 1])) == {record.label + 1}
