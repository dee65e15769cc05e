"""CAMUS through ultrabench's processor: NIfTI half sequences and cfg files to a checked task."""

import re

import numpy as np
import pytest
from PIL import Image
from raw_trees import prepare_check_bench, write_camus
from raw_trees_segmentation import (
    CAMUS_SHAPE,
    camus_structures,
    mask_values,
    prepare_and_read,
    split_sizes,
    write_camus_structures,
)

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import camus


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_camus(tmp_path / "raw" / "CAMUS_public")
    _, checked, bench = prepare_check_bench("camus", tmp_path / "raw", sizes, tmp_path, monkeypatch)
    assert "ok    leakage: no patient in two splits (10 patients)" in checked
    assert "ok    files: 40 images and 80 masks present" in checked  # scan and structure masks
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)


def test_bad_quality_grade_and_missing_sequence_are_named(tmp_path):
    write_camus(tmp_path, patients=2)
    cfg = tmp_path / "database_nifti" / "patient0001" / "Info_2CH.cfg"
    cfg.write_text(cfg.read_text().replace("ImageQuality: Medium", "ImageQuality: Great"))
    (tmp_path / "database_nifti/patient0002/patient0002_4CH_half_sequence.nii.gz").unlink()
    with pytest.raises(UserError) as error:
        camus.locate(tmp_path)
    message = str(error.value)
    assert "patient0001/Info_2CH.cfg: ImageQuality 'Great'" in message
    assert "patient0002/patient0002_4CH_half_sequence.nii.gz missing" in message


def test_structure_masks_for_camus_seg(tmp_path):
    sizes = write_camus_structures(tmp_path / "raw" / "CAMUS_public")
    prepared, dataset = prepare_and_read("camus-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:camus" and split_sizes(dataset) == sizes
    assert mask_values(dataset) == {0, 1, 2, 3}  # every structure, class indices as stored
    # each frame's mask is its _gt frame turned back upright, like the image
    record = dataset.splits["test"].records[0]
    mask = np.asarray(Image.open(dataset.root / record.mask))
    assert np.array_equal(mask, camus_structures(CAMUS_SHAPE))
    patients = {name: {r.group for r in s.records} for name, s in dataset.splits.items()}
    assert not (patients["train"] & patients["test"]) and None not in patients["train"]
