"""TN5000 through our preparer: the official VOC split, malignant when any nodule is."""

import json
import re

import pytest
from raw_trees import prepare_check_bench, tn5000_xml, write_tn5000

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import tn5000


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_tn5000(tmp_path / "raw")  # nested TN5000_forReview/TN5000_forReview is found
    _, checked, bench = prepare_check_bench(
        "tn5000", tmp_path / "raw", sizes, tmp_path, monkeypatch
    )
    assert "| train      | 12       | 12     | 3        | 9 " in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)
    train = json.loads((tmp_path / "data" / "tn5000_v1" / "train.json").read_text())
    # the official ids keep their split; image 000004 has a benign and a malignant nodule
    assert [r["image"] for r in train][:4] == [f"images/00000{i}.png" for i in (1, 2, 3, 4)]
    mixed = train[3]
    assert mixed["label"] == 1 and mixed["pathology"] == "malignant"
    assert [n["pathology"] for n in mixed["nodules"]] == ["benign", "malignant"]
    assert train[0]["label"] == 0 and train[0]["nodules"][0]["box"] == [30, 30, 70, 60]


def test_split_lists_and_annotations_are_checked(tmp_path):
    write_tn5000(tmp_path)
    base = tmp_path / "TN5000_forReview" / "TN5000_forReview"
    with (base / "ImageSets" / "Main" / "test.txt").open("a") as handle:
        handle.write("000001\n")  # also in train.txt
    (base / "Annotations" / "000003.xml").write_text(tn5000_xml("000003", (80, 112), ["2"]))
    with pytest.raises(UserError) as error:
        tn5000.locate(tmp_path)
    message = str(error.value)
    assert "ids listed in two split files: 000001" in message
    assert "000003.xml: nodule class '2' is not 0/1" in message


def test_an_annotation_without_nodules_is_refused(tmp_path):
    write_tn5000(tmp_path)
    base = tmp_path / "TN5000_forReview" / "TN5000_forReview"
    (base / "Annotations" / "000004.xml").write_text(tn5000_xml("000004", (80, 112), []))
    with pytest.raises(UserError, match="000004.xml has no nodule"):
        tn5000.locate(tmp_path)
