"""Butterfly through ultrabench's processor: release folders to a checked, benchmarkable task."""

import json
import re

import pytest
from raw_trees import prepare_check_bench, write_butterfly

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import butterfly


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_butterfly(tmp_path / "raw")
    _, checked, bench = prepare_check_bench(
        "butterfly", tmp_path / "raw", sizes, tmp_path, monkeypatch
    )
    assert "ok    leakage: no patient in two splits (6 patients)" in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)
    test = json.loads((tmp_path / "data" / "butterfly_v1.0.1" / "test.json").read_text())
    assert {r["patient"] for r in test} == {26}  # the release's test patient stays in test


def test_unknown_region_folder_is_named(tmp_path):
    write_butterfly(tmp_path)
    (tmp_path / "test" / "26" / "liver").mkdir()
    with pytest.raises(UserError, match=r"test/26/ has unknown region\(s\) liver"):
        butterfly.locate(tmp_path)


def test_a_stray_folder_would_become_test_data_and_is_refused(tmp_path):
    write_butterfly(tmp_path)
    (tmp_path / "butterfly_mini_dataset").mkdir()
    with pytest.raises(UserError, match=r"unexpected folder butterfly_mini_dataset/"):
        butterfly.locate(tmp_path)
