"""POCUS through ultrabench's processor: repository images, MP4 and GIF videos to a checked task."""

import json
import re

import pytest
from raw_trees import prepare_check_bench, write_pocus

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import pocus


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_pocus(tmp_path / "raw" / "covid19_ultrasound")
    _, checked, bench = prepare_check_bench("pocus", tmp_path / "raw", sizes, tmp_path, monkeypatch)
    assert "ok    leakage: no source in two splits (15 sources)" in checked
    # every validation frame comes from two regular-lung sources: a warning, not a failure
    assert "warn  classes: classes without images in validation: pneumonia, covid" in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)
    test = json.loads((tmp_path / "data" / "pocus_v1.0.1" / "test.json").read_text())
    sources = sorted({r["source"] for r in test})
    assert sources == ["Cov-Atlas.gif", "Pneu_fig1.jpg", "Reg_clip0.mp4"]
    assert sum(r["source"] == "Reg_clip0.mp4" for r in test) == 4  # 3 Hz of a 6 fps clip


def test_a_folder_without_the_convex_data_is_rejected(tmp_path):
    (tmp_path / "data" / "pocus_images" / "convex").mkdir(parents=True)
    with pytest.raises(UserError, match="expected the covid19_ultrasound repository root"):
        pocus.locate(tmp_path)
