"""`ubench tasks check`: sizes, classes, files, duplicates across splits and group leakage."""

import json
import shutil
from dataclasses import replace

import pytest
from conftest import make_dataset
from raw_trees import override_card, write_busbra

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.task_check import FAIL, OK, SKIP, WARN, check_task, format_report


def _status(report, check):
    return [(f.status, f.text) for f in report.findings if f.check == check]


def _records(folder, split):
    return json.loads((folder / f"{split}.json").read_text())


def _write(folder, split, records):
    (folder / f"{split}.json").write_text(json.dumps(records))


def test_a_valid_folder_passes_every_check(tmp_path):
    card = make_dataset(tmp_path)
    report = check_task(card, tmp_path)
    assert report.passed
    assert report.counts == {"train": [4, 4], "validation": [2, 2], "test": [3, 3]}
    assert [(f.status, f.check) for f in report.findings] == [
        (OK, "folder"),
        (OK, "sizes"),
        (OK, "classes"),
        (OK, "files"),
        (OK, "duplicates"),
        (OK, "leakage"),
    ]
    text = format_report(report)
    assert "| train      | 8        | 8      | 4   | 4   |" in text
    assert "ok    files: 18 images and 18 masks present" in text
    assert text.endswith("passed")


def test_the_same_image_bytes_in_train_and_test_are_caught(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    shutil.copyfile(folder / "images/train_002.png", folder / "images/test_004.png")
    report = check_task(card, tmp_path)
    assert not report.passed
    [(status, text)] = _status(report, "duplicates")
    assert status == FAIL
    assert (
        "1 image(s) in two splits: images/train_002.png (train) = images/test_004.png (test)"
        in text
    )


def test_a_patient_in_two_splits_is_caught(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    test = _records(folder, "test")
    test[0]["patient"] = "ptrain1"  # a training patient's image planted in test
    _write(folder, "test", test)
    report = check_task(card, tmp_path)
    [(status, text)] = _status(report, "leakage")
    assert (
        status == FAIL and "1 patient(s) in two splits: patient ptrain1 in train and test" in text
    )


def test_missing_images_and_masks_are_listed(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    (folder / "images/validation_001.png").unlink()
    (folder / "masks/scan/test_002.png").unlink()
    report = check_task(card, tmp_path)
    [(status, text)] = _status(report, "files")
    assert status == FAIL
    assert text == (
        "2 missing: validation: images/validation_001.png; "
        "test: masks/scan/test_002.png (scan_mask)"
    )


def test_sizes_that_differ_from_the_card_fail(tmp_path):
    card = replace(make_dataset(tmp_path), split_sizes={"train": 529, "test": 6})
    report = check_task(card, tmp_path)
    [(status, text)] = _status(report, "sizes")
    assert status == FAIL and text == "differ from the card's 529/?/6: train 8 (card 529)"
    card = replace(card, split_sizes={})
    assert _status(check_task(card, tmp_path), "sizes") == [(SKIP, "the card gives no split sizes")]


def test_repeats_within_a_split_and_empty_validation_classes_only_warn(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    shutil.copyfile(folder / "images/train_000.png", folder / "images/train_002.png")
    validation = [r for r in _records(folder, "validation") if r["label"] == 0]
    _write(folder, "validation", validation)
    report = check_task(replace(card, split_sizes={}), tmp_path)
    assert report.passed
    assert (WARN, "classes without images in validation: b") in _status(report, "classes")
    warnings = [t for s, t in _status(report, "duplicates") if s == WARN]
    assert warnings == [
        "1 image(s) repeated within a split: images/train_000.png = images/train_002.png"
    ]


def test_group_checks_follow_the_card(tmp_path):
    card = make_dataset(tmp_path)
    report = check_task(replace(card, group_field=None), tmp_path)
    assert _status(report, "leakage")[0][0] == SKIP
    report = check_task(replace(card, group_field="video"), tmp_path)
    assert _status(report, "leakage") == [(FAIL, "no record has the card's group field 'video'")]


def test_an_unreadable_folder_reports_why_and_stops(tmp_path):
    card = make_dataset(tmp_path)
    (tmp_path / "toy_v1" / "test.json").unlink()
    report = check_task(card, tmp_path)
    assert not report.passed and report.counts == {}
    assert report.findings[0].text == "missing split file test.json"


def test_the_task_folder_itself_may_be_given(tmp_path):
    card = make_dataset(tmp_path)
    assert check_task(card, tmp_path / "toy_v1").passed
    with pytest.raises(UserError, match="holds neither the task folder toy_v1/ nor train.json"):
        check_task(card, tmp_path / "elsewhere")


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_planted_faults_in_a_prepared_dataset_fail_the_command(tmp_path, capsys, monkeypatch):
    write_busbra(tmp_path / "raw")
    assert main(["prepare", "busbra", str(tmp_path / "raw"), str(tmp_path / "data")]) == 0
    override_card(
        "busbra", {"train": 14, "validation": 2, "test": 4}, tmp_path / "cards", monkeypatch
    )
    code, out, _ = _cli(capsys, "tasks", "check", "busbra", str(tmp_path / "data"))
    assert code == 0 and out.rstrip().endswith("passed")

    folder = tmp_path / "data" / "busbra_v1"
    train, test = _records(folder, "train"), _records(folder, "test")
    shutil.copyfile(folder / train[0]["image"], folder / test[0]["image"])  # same bytes
    test[1]["patient"] = train[1]["patient"]  # the same patient in train and test
    _write(folder, "test", test)
    code, out, err = _cli(capsys, "tasks", "check", "busbra", str(tmp_path / "data"))
    assert code == 1 and err == ""
    assert f"FAIL  duplicates: 1 image(s) in two splits: {train[0]['image']} (train)" in out
    assert (
        f"FAIL  leakage: 1 patient(s) in two splits: patient {train[1]['patient']} in train" in out
    )
    assert out.rstrip().endswith("FAILED: 2 check(s)")

    code, out, _ = _cli(capsys, "tasks", "check", "busbra", str(folder), "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False and data["counts"]["test"] == [3, 1]
    assert [f["check"] for f in data["findings"] if f["status"] == FAIL] == [
        "duplicates",
        "leakage",
    ]


def test_a_missing_folder_is_a_one_line_user_error(tmp_path, capsys):
    code, _, err = _cli(capsys, "tasks", "check", "busbra", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("ubench tasks: error:") and "busbra_v1/" in err
    code, _, err = _cli(capsys, "tasks", "check", "nope", str(tmp_path))
    assert code == 2 and "unknown task 'nope'" in err.lower()


def test_the_listing_shows_the_paper_tasks_with_published_sizes(capsys):
    code, out, _ = _cli(capsys, "tasks")
    assert code == 0
    for row in (
        "| aul ",
        "529/59/147",
        "765/86/213",
        "28053/6272/6751",
        "390/50/110",
        "1019/114/122",
        "800/200/469",
        "1444/177/443",
        "3500/500/1000",
        "ubench:tn5000",
        "ultrabench:camus",
    ):
        assert row in out
