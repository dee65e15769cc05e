"""AUL through ultrabench's processor: the fake Zenodo tree to a checked, benchmarkable task."""

import json
import re
import shutil

import pytest
from raw_trees import prepare_check_bench, write_aul

from ultrabench_eval.core.errors import UserError
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
