"""BUS-BRA through our preparer: one image per patient, patient-grouped 7:1:2 split."""

import json
import re

import numpy as np
import pytest
from PIL import Image
from raw_trees import prepare_check_bench, write_busbra

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import busbra
from ultrabench_eval.data.prepare.ultrabench_format import grouped_split


def _records(folder):
    return {
        s: json.loads((folder / f"{s}.json").read_text()) for s in ("train", "validation", "test")
    }


def test_raw_tree_to_checked_task_and_bench(tmp_path, monkeypatch):
    sizes = write_busbra(tmp_path / "raw")
    _, checked, bench = prepare_check_bench(
        "busbra", tmp_path / "raw", sizes, tmp_path, monkeypatch
    )
    assert "ok    leakage: no patient in two splits (20 patients)" in checked
    assert checked.rstrip().endswith("passed")
    assert re.search(r"\| pixels +\| \**\d+\.\d", bench)
    folder = tmp_path / "data" / "busbra_v1"
    records = _records(folder)
    every = [r for split in records.values() for r in split]
    # one image per patient, the patient's first row: bus_0001-l, not bus_0001-r
    assert len(every) == 20 and len({r["patient"] for r in every}) == 20
    assert "images/bus_0001-l.png" in {r["image"] for r in every}
    assert all(r["label"] == (r["patient"] % 3 == 0) for r in every)
    mask = np.asarray(Image.open(folder / every[0]["tumor_mask"]))
    assert set(np.unique(mask)) == {0, 1}
    scan = np.asarray(Image.open(folder / every[0]["scan_mask"]))
    assert set(np.unique(scan)) <= {0, 1} and scan.mean() > 0.5


def test_the_split_reproduces_the_published_sizes_on_the_real_patient_counts():
    # BUS-BRA's 1064 patients: 722 benign, 342 malignant
    cases = list(range(1064))
    labels = [1] * 342 + [0] * 722
    split = grouped_split(cases, labels, busbra.SEED)
    sizes = {s: sum(v == s for v in split.values()) for s in ("train", "validation", "test")}
    assert sizes == {"train": 765, "validation": 86, "test": 213}
    assert grouped_split(cases, labels, busbra.SEED) == split  # the same every time


def test_bad_rows_are_named(tmp_path):
    write_busbra(tmp_path)
    csv = tmp_path / "BUSBRA" / "bus_data.csv"
    csv.write_text(csv.read_text().replace(",benign,", ",unknown,", 1))
    (tmp_path / "BUSBRA" / "Masks" / "mask_0002-s.png").unlink()
    with pytest.raises(UserError) as error:
        busbra.locate(tmp_path)
    message = str(error.value)
    assert "Pathology not benign/malignant for bus_0001-l" in message
    assert "Masks/mask_<NNNN>-<s>.png missing for bus_0002-s" in message


def test_a_csv_without_the_case_column_is_refused(tmp_path):
    write_busbra(tmp_path)
    csv = tmp_path / "BUSBRA" / "bus_data.csv"
    csv.write_text(csv.read_text().replace("Case", "Patient", 1))
    with pytest.raises(UserError, match="lacks column"):
        busbra.locate(tmp_path)
