"""MMOTU through ultrabench's processor: OTU_2d lists and masks to a checked task."""

import re

import pytest
from raw_trees import prepare_check_bench, write_mmotu

from ultrabench_eval.core.errors import UserError
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
