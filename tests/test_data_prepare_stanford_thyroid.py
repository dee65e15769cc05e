"""Stanford Thyroid through ultrabench's processor: the cine-clip HDF5 file and its metadata
to the nodule segmentation task, split by patient."""

import csv
import importlib

import numpy as np
import pytest
from raw_trees_segmentation import (
    mask_values,
    prepare_and_read,
    split_sizes,
    thyroid_patients,
    write_stanford_thyroid,
)

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import stanford_thyroid

PROCESSOR = "ultrabench.datasets.stanford_thyroid"


def test_raw_tree_to_segmentation_task_split_by_patient(tmp_path, monkeypatch):
    # ten of the processor's 105 patients keep the test fast (it morphs every frame 60 times)
    kept = thyroid_patients()[:10]
    monkeypatch.setattr(importlib.import_module(PROCESSOR), "PATIENTS", kept)
    sizes = write_stanford_thyroid(tmp_path / "raw", patients=kept, frames=2)
    prepared, dataset = prepare_and_read("stanford-thyroid-seg", tmp_path / "raw", tmp_path / "d")
    assert prepared.preparer == "ultrabench:stanford_thyroid" and split_sizes(dataset) == sizes
    assert mask_values(dataset) == {0, 1}  # the archive's 255 mapped to 1
    patients = {name: {r.group for r in s.records} for name, s in dataset.splits.items()}
    assert set().union(*patients.values()) == {str(p) for p in kept}  # 1 and 2 left out
    assert sum(len(p) for p in patients.values()) == len(kept)  # no patient in two splits


def test_missing_patient_and_metadata_row_are_named(tmp_path):
    everyone = thyroid_patients()
    write_stanford_thyroid(tmp_path, patients=[p for p in everyone if p != 57], frames=1)
    metadata = tmp_path / "metadata.csv"
    rows = list(csv.reader(metadata.open()))
    with metadata.open("w", newline="") as handle:
        csv.writer(handle).writerows([r for r in rows if r[0] != "8_"])
    with pytest.raises(UserError) as error:
        stanford_thyroid.locate(tmp_path)
    message = str(error.value)
    assert "metadata.csv has no single row for annot_id 8_" in message
    assert "dataset.hdf5 has no frames of patient(s) 57" in message


def test_unreadable_hdf5_is_named(tmp_path):
    write_stanford_thyroid(tmp_path, patients=[3, 4, 6, 7, 8], frames=1)
    (tmp_path / "dataset.hdf5").write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match=r"dataset\.hdf5 cannot be read \("):
        stanford_thyroid.locate(tmp_path)
