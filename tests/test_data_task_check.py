"""`ubench tasks check`: sizes, classes, files, duplicates across splits and group leakage."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import yaml
from conftest import make_dataset
from PIL import Image
from raw_trees import override_card, write_busbra

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.task_card import TaskCard
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


# -- segmentation tasks: classes counted from the label masks ---------------------------------

SEG_CARD = {
    "name": "toyseg",
    "dataset": "toyseg_v1",
    "kind": "segmentation",
    "classes": ["background", "cyst", "solid"],
    "mask_field": "lesion_mask",
    "mask_values": [0, 128, 255],
    "group_field": "patient",
    "split_sizes": {"train": 4, "validation": 2, "test": 2},
}


def _seg_mask(index):
    """8 x 8 masks: 0 a 2 x 2 cyst, 1 a 4 x 4 solid mass, 2 nothing, 3 a cyst and a mass."""
    mask = np.zeros((8, 8), np.uint8)
    if index in (0, 3):
        mask[0:2, 0:2] = 128
    if index == 1:
        mask[4:8, 4:8] = 255
    if index == 3:
        mask[6:8, 6:8] = 255
    return mask


def _write_seg(root):
    """The toyseg folder: 4 / 2 / 2 images (8 x 8) with label masks, one patient per image."""
    folder = root / "toyseg_v1"
    (folder / "masks").mkdir(parents=True)
    (folder / "images").mkdir()
    for split, count in SEG_CARD["split_sizes"].items():
        records = []
        for i in range(count):
            stem = f"{split}_{i}.png"
            image = np.full((8, 8), 10 * i + len(split), np.uint8)  # distinct bytes per image
            Image.fromarray(image).save(folder / "images" / stem)
            Image.fromarray(_seg_mask(i)).save(folder / "masks" / stem)
            records.append(
                {"image": f"images/{stem}", "lesion_mask": f"masks/{stem}", "patient": stem}
            )
        _write(folder, split, records)
    return TaskCard.from_dict(SEG_CARD), folder


def test_a_segmentation_folder_counts_classes_from_its_masks(tmp_path):
    card, _ = _write_seg(tmp_path)
    report = check_task(card, tmp_path)
    assert report.passed
    assert [(f.status, f.check) for f in report.findings] == [
        (OK, "folder"),
        (OK, "sizes"),
        (OK, "masks"),
        (OK, "classes"),
        (OK, "files"),
        (OK, "duplicates"),
        (OK, "leakage"),
    ]
    # images whose mask holds each class, not the records' label (0 throughout)
    assert report.counts == {"train": [4, 2, 2], "validation": [2, 1, 1], "test": [2, 1, 1]}
    assert report.sizes == {"train": 4, "validation": 2, "test": 2}
    # train: 256 pixels, cyst 4 + 4, solid 16 + 4
    assert report.pixel_share["train"] == pytest.approx([228 / 256, 8 / 256, 20 / 256])
    assert report.pixel_share["test"] == pytest.approx([108 / 128, 4 / 128, 16 / 128])
    text = format_report(report)
    assert "| train      | 4        | 4      | 4 (89.1%)    | 2 (3.1%) | 2 (7.8%)  |" in text
    assert "ok    masks: 8 label masks hold only the card's values (0 background, 128 cyst" in text


def test_a_mask_value_the_card_does_not_list_is_a_failed_check_not_a_crash(tmp_path):
    card, folder = _write_seg(tmp_path)
    for stem in ("train_1.png", "test_0.png"):
        mask = _seg_mask(1)
        mask[0, 0] = 7
        Image.fromarray(mask).save(folder / "masks" / stem)
    report = check_task(card, tmp_path)
    assert not report.passed
    [(status, text)] = _status(report, "masks")
    assert status == FAIL
    assert text.startswith("2 label mask(s) do not fit the card: label mask ")
    assert "train_1.png has pixel value(s) 7 that task 'toyseg' does not list" in text
    assert text.endswith("(also test: masks/test_0.png)")
    # the other checks still ran, and the unreadable masks are left out of the counts
    assert [f.check for f in report.findings][-3:] == ["files", "duplicates", "leakage"]
    assert report.counts["train"] == [3, 2, 1] and report.counts["test"] == [1, 0, 1]
    assert _status(report, "classes") == [(WARN, "classes without images in test: cyst")]


def test_classes_absent_from_a_split_warn(tmp_path):
    card, folder = _write_seg(tmp_path)
    for i in range(2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "masks" / f"test_{i}.png")
    report = check_task(card, tmp_path)
    assert report.passed
    assert _status(report, "classes") == [(WARN, "classes without images in test: cyst, solid")]
    assert report.pixel_share["test"] == [1.0, 0.0, 0.0]


def test_masks_of_another_size_missing_masks_sizes_and_leakage_are_still_checked(tmp_path):
    card, folder = _write_seg(tmp_path)
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(folder / "masks" / "train_2.png")
    (folder / "masks" / "validation_1.png").unlink()
    test = _records(folder, "test")
    test[0]["patient"] = "train_0.png"
    _write(folder, "test", test)
    report = check_task(replace(card, split_sizes={"train": 5}), tmp_path)
    assert _status(report, "masks") == [
        (
            FAIL,
            "1 label mask(s) of another size than their image: train: masks/train_2.png 6x4 "
            "(image 8x8) (make each mask its image's size)",
        )
    ]
    assert _status(report, "sizes") == [(FAIL, "differ from the card's 5/?/?: train 4 (card 5)")]
    assert _status(report, "files") == [
        (FAIL, "1 missing: validation: masks/validation_1.png (lesion_mask)")
    ]
    assert _status(report, "leakage")[0][0] == FAIL
    assert report.counts["validation"] == [1, 1, 0]  # the missing mask is not counted


def test_cli_checks_a_segmentation_folder(tmp_path, capsys, monkeypatch):
    _write_seg(tmp_path / "data")
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toyseg.yaml").write_text(yaml.safe_dump(SEG_CARD))
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    monkeypatch.setattr(TASKS, "_populated", False)
    code, out, _ = _cli(capsys, "tasks", "check", "toyseg", str(tmp_path / "data"))
    assert code == 0 and out.rstrip().endswith("passed")
    assert "per class: images whose mask holds it (its share of the mask pixels)" in out
    mask = tmp_path / "data" / "toyseg_v1" / "masks" / "validation_0.png"
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(mask)
    code, out, err = _cli(
        capsys, "tasks", "check", "toyseg", str(tmp_path / "data"), "--format", "json"
    )
    data = json.loads(out)
    assert code == 1 and err == "" and data["kind"] == "segmentation"
    assert [f["check"] for f in data["findings"] if f["status"] == FAIL] == ["masks"]
    assert data["counts"]["validation"] == [1, 0, 1] and data["sizes"]["validation"] == 2
    assert data["pixel_share"]["validation"] == pytest.approx([48 / 64, 0.0, 16 / 64])
