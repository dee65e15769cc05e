"""GBCU through ultrabench's processor: images, CSV lists and boxes to a checked task."""

import re

import pytest
from raw_trees import prepare_check_bench, write_gbcu

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import gbcu


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_gbcu(tmp_path / "raw" / "GBCU-Shared")
    _, checked, bench = prepare_check_bench("gbcu", tmp_path / "raw", sizes, tmp_path, monkeypatch)
    assert "| test       | 9 " in checked and checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)


def test_list_problems_are_named(tmp_path):
    write_gbcu(tmp_path)
    (tmp_path / "imgs" / "im00002.jpg").unlink()
    with (tmp_path / "test.txt").open("a") as handle:
        handle.write("im00099.jpg,7\n")
    with pytest.raises(UserError) as error:
        gbcu.locate(tmp_path)
    message = str(error.value)
    assert "train.txt images not in imgs/: im00002.jpg" in message
    assert "test.txt lines not '<image>,<0|1|2>': im00099.jpg,7" in message
