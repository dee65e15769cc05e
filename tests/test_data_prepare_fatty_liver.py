"""Fatty liver through ultrabench's processor: the MATLAB file to a checked, benchmarkable task."""

import re

import pytest
from raw_trees import FATTY_LIVER_FILE, prepare_check_bench, write_fatty_liver

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import fatty_liver


def test_raw_file_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_fatty_liver(tmp_path / "raw" / "zenodo")
    _, checked, bench = prepare_check_bench(
        "fatty-liver", tmp_path / "raw", sizes, tmp_path, monkeypatch
    )
    assert "ok    leakage: no patient in two splits (20 patients)" in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)


def test_the_file_itself_is_accepted_and_other_files_are_not(tmp_path):
    write_fatty_liver(tmp_path)
    assert fatty_liver.locate(tmp_path / FATTY_LIVER_FILE) == tmp_path / FATTY_LIVER_FILE
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is not a .mat file"):
        fatty_liver.locate(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=f"holds no {FATTY_LIVER_FILE}"):
        fatty_liver.locate(tmp_path / "empty")


def test_a_broken_mat_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / FATTY_LIVER_FILE).write_bytes(b"not a MATLAB file")
    code = main(["prepare", "fatty-liver", str(tmp_path / "raw"), str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ultrabench 1.0.1's fatty_liver processor failed on" in err
    assert list((tmp_path / "data").iterdir()) == []
