"""AUL through ultrabench's processor: the fake Zenodo tree to a checked, benchmarkable task."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from raw_trees import prepare_check_bench, write_aul
from raw_trees_segmentation import (
    AUL_WITHOUT_LIVER,
    mask_values,
    prepare_and_read,
    split_sizes,
    write_aul_masses,
)

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.prepare import aul


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_aul(tmp_path / "raw" / "AUL")  # the archive's own wrapper folder is found
    prepared, checked, bench = prepare_check_bench(
        "aul", tmp_path / "raw", sizes, tmp_path, monkeypatch
    )
    assert "aul_mass_v1.0.1" in prepared and "21/3/6 (card: 529/59/147, different" in prepared
    assert "| train      | 21 " in checked and checked.rstrip().endswith("passed")
    assert "skip  leakage" in checked  # one image per patient: no group field
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)
    folder = tmp_path / "data" / "aul_mass_v1.0.1"
    records = json.loads((folder / "train.json").read_text())
    assert {"image", "scan_mask", "liver_mask", "mass_mask", "label"} <= set(records[0])
    # the liver segmentation output is not kept; the image without a liver outline is
    everything = [
        r
        for s in ("train", "validation", "test")
        for r in json.loads((folder / f"{s}.json").read_text())
    ]
    assert [r["image"] for r in everything if r["liver_mask"] is None] == ["images/normal_7.jpg"]
    assert not (tmp_path / "data" / "aul_liver_v1.0.1").exists()


def test_missing_scan_outline_is_one_line_naming_the_file(tmp_path):
    write_aul(tmp_path)
    (tmp_path / "Benign" / "segmentation" / "outline" / "12.json").unlink()
    with pytest.raises(
        UserError, match=r"incomplete: Benign/segmentation/outline/12\.json missing"
    ):
        aul.locate(tmp_path)


def test_a_folder_without_the_class_folders_is_rejected(tmp_path):
    write_aul(tmp_path)
    shutil.rmtree(tmp_path / "Normal")
    with pytest.raises(UserError, match="does not hold the AUL download: expected folders Benign/"):
        aul.locate(tmp_path)


def _image_names(dataset):
    return {name: set(split.ids) for name, split in dataset.splits.items()}


def _area(path):
    return int((np.asarray(Image.open(path)) > 0).sum())


def test_mass_segmentation_shares_the_classification_folder(tmp_path):
    sizes = write_aul_masses(tmp_path / "raw" / "AUL")
    prepared, mass = prepare_and_read("aul-mass-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:aul" and split_sizes(mass) == sizes
    assert mask_values(mass) == {0, 1}
    # normal images have an empty mass mask, the others the outlined mass
    for split in mass.splits.values():
        for record in split.records:
            empty = _area(mass.root / record.mask) == 0
            assert empty == record.image.startswith("images/normal_"), record.image
    # the same folder is the classification task's
    assert _image_names(open_dataset(TASKS.get("aul"), tmp_path / "data")) == _image_names(mass)


def test_liver_segmentation_is_the_mass_split_less_the_image_without_a_liver(tmp_path):
    sizes = write_aul_masses(tmp_path / "raw")
    prepared, liver = prepare_and_read("aul-liver-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:aul-liver"
    assert not (tmp_path / "data" / "aul_mass_v1.0.1").exists()
    # one split is one image short: the one without a liver outline, wherever it fell
    got = split_sizes(liver)
    assert sorted(sizes[s] - got[s] for s in sizes) == [0, 0, 1]
    assert AUL_WITHOUT_LIVER not in set().union(*_image_names(liver).values())
    assert mask_values(liver) == {0, 1}
    records = json.loads((liver.root / "train.json").read_text())
    benign = next(r for r in records if r["pathology"] == "Benign")
    assert _area(liver.root / benign["liver_mask"]) > _area(liver.root / benign["mass_mask"]) > 0


def test_an_image_with_a_mass_but_no_mass_outline_is_named(tmp_path):
    write_aul(tmp_path)
    (tmp_path / "Malignant" / "segmentation" / "mass" / "25.json").unlink()
    with pytest.raises(UserError, match=r"Malignant/segmentation/mass/25\.json missing"):
        aul.locate(tmp_path)
