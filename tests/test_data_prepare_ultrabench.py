"""ultrabench's processors as library calls: same output on every filesystem, one-line errors."""

import glob
import importlib
import json
import os
import warnings

import pandas as pd
import pytest
from raw_trees import write_aul, write_gbcu

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import aul, gbcu
from ultrabench_eval.data.prepare.ultrabench import _pandas2_strings, output_folder, run_processor


def _splits(folder):
    return {
        s: [r["image"] for r in json.loads((folder / f"{s}.json").read_text())]
        for s in ("train", "validation", "test")
    }


def test_the_aul_split_does_not_depend_on_the_listing_order(tmp_path, monkeypatch):
    write_aul(tmp_path / "raw")
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    aul.PREPARER.write(tmp_path / "raw", tmp_path / "a")
    listed = glob.glob
    # another filesystem: the same files listed in another order
    monkeypatch.setattr(glob, "glob", lambda *a, **k: sorted(listed(*a, **k), reverse=True))
    aul.PREPARER.write(tmp_path / "raw", tmp_path / "b")
    assert _splits(tmp_path / "a" / "aul_mass_v1.0.1") == _splits(
        tmp_path / "b" / "aul_mass_v1.0.1"
    )
    # ultrabench 1.0.1 alone follows the listing: its split changes with the order
    processor = importlib.import_module("ultrabench.datasets.aul")
    with _pandas2_strings():
        processor.aul(str(tmp_path / "raw"), str(tmp_path / "c"))
    plain = _splits(tmp_path / "c" / "aul_mass_v1.0.1")
    assert set(plain["test"]) != set(_splits(tmp_path / "a" / "aul_mass_v1.0.1")["test"])


def _state():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pandas option is deprecated
        return glob.glob, os.listdir, pd.get_option("future.infer_string")


def test_listings_and_pandas_options_are_restored(tmp_path):
    before = _state()
    write_gbcu(tmp_path / "raw", train_per_class=7, test_per_class=1)
    run_processor("gbcu", tmp_path / "raw", tmp_path, gbcu.LAYOUT)
    assert _state() == before


def test_a_processor_crash_is_one_line_with_its_last_output(tmp_path, monkeypatch, capsys):
    module = importlib.import_module("ultrabench.datasets.gbcu")

    def crash(raw, out):
        print("Total number of examples: 3")
        raise KeyError("im00007.jpg")

    monkeypatch.setattr(module, "gbcu", crash)
    with pytest.raises(UserError) as error:
        run_processor("gbcu", tmp_path, tmp_path, gbcu.LAYOUT)
    message = str(error.value)
    assert "ultrabench 1.0.1's gbcu processor failed on" in message
    assert "after 'Total number of examples: 3': KeyError: 'im00007.jpg'" in message
    assert f"(expected {gbcu.LAYOUT})" in message and "\n" not in message
    assert capsys.readouterr().out == ""  # its prints stay off the terminal


def test_an_assertion_reads_as_the_processor_s_reason(tmp_path):
    # the processor refuses an output folder that already holds its dataset
    (tmp_path / "gbcu_v1.0.1").mkdir()
    with pytest.raises(UserError, match="AssertionError: A matching version of the GBCU dataset"):
        run_processor("gbcu", tmp_path, tmp_path, gbcu.LAYOUT)


def test_another_ultrabench_version_is_refused_before_writing(tmp_path, monkeypatch):
    module = importlib.import_module("ultrabench.datasets.gbcu")
    assert output_folder(module) == "gbcu_v1.0.1"
    monkeypatch.setattr(module, "__version__", "1.1.0")
    with pytest.raises(
        UserError,
        match=r"writes gbcu_v1.1.0, but the task card expects gbcu_v1.0.1; .*ultrabench==1.0.1",
    ):
        gbcu.PREPARER.write(tmp_path, tmp_path)
    assert list(tmp_path.iterdir()) == []
