import json

import pytest
from conftest import make_dataset

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import DatasetError, open_dataset


def _records(folder, split):
    return json.loads((folder / f"{split}.json").read_text())


def _write(folder, split, records):
    (folder / f"{split}.json").write_text(json.dumps(records))


def test_valid_folder_opens_with_labels_groups_and_ids(tmp_path):
    card = make_dataset(tmp_path)
    dataset = open_dataset(card, tmp_path)
    train = dataset.splits["train"]
    assert len(train) == 8
    assert train.ids[0] == "images/train_000.png"
    assert list(train.labels[:4]) == [0, 1, 0, 1]
    assert train.records[0].group == "ptrain0"
    assert train.records[0].scan_mask == "masks/scan/train_000.png"


def test_missing_folder_says_where_and_how(tmp_path):
    card = make_dataset(tmp_path)
    with pytest.raises(UserError, match="not found: .*nowhere.*toy_v1"):
        open_dataset(card, tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda f: (f / "validation.json").unlink(), "missing split file validation.json"),
        (lambda f: (f / "test.json").write_text("[{"), "test.json is not valid JSON"),
        (lambda f: (f / "test.json").write_text('{"a": 1}'), "must hold a list of records"),
        (lambda f: (f / "test.json").write_text("[]"), "test.json has no records"),
        (
            lambda f: (f / "images" / "train_003.png").unlink(),
            "image images/train_003.png not found",
        ),
        (
            lambda f: (f / "masks/scan/test_001.png").unlink(),
            "scan mask masks/scan/test_001.png not found",
        ),
    ],
)
def test_broken_folders_are_rejected_with_the_reason(tmp_path, breakage, message):
    card = make_dataset(tmp_path)
    breakage(tmp_path / "toy_v1")
    with pytest.raises(DatasetError, match=message):
        open_dataset(card, tmp_path)


def test_label_outside_class_list(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    records = _records(folder, "train")
    records[2]["label"] = 7
    _write(folder, "train", records)
    with pytest.raises(
        DatasetError, match=r"record 2 \(images/train_002.png\): label .* = 7 is outside"
    ):
        open_dataset(card, tmp_path)


def test_record_without_image_or_label(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    records = _records(folder, "validation")
    del records[0]["image"]
    del records[1]["label"]
    _write(folder, "validation", records)
    with pytest.raises(DatasetError) as err:
        open_dataset(card, tmp_path)
    assert "validation.json record 0 has no 'image' path" in str(err.value)
    assert "'<missing>' is outside the class list" in str(err.value)


def test_empty_class_in_train_is_reported(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    _write(folder, "train", [r for r in _records(folder, "train") if r["label"] == 0])
    with pytest.raises(DatasetError, match="train.json has no example of class.*b"):
        open_dataset(card, tmp_path)


def test_duplicate_image_in_a_split(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    records = _records(folder, "test")
    _write(folder, "test", [*records, records[0]])
    with pytest.raises(DatasetError, match="listed twice"):
        open_dataset(card, tmp_path)


def test_class_name_labels_are_accepted(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    records = _records(folder, "test")
    for r in records:
        r["label"] = card.classes[r["label"]]
    _write(folder, "test", records)
    assert list(open_dataset(card, tmp_path).splits["test"].labels[:2]) == [0, 1]


def test_all_problems_reported_in_one_line(tmp_path):
    card = make_dataset(tmp_path)
    folder = tmp_path / "toy_v1"
    (folder / "validation.json").unlink()
    (folder / "test.json").write_text("nope")
    with pytest.raises(DatasetError) as err:
        open_dataset(card, tmp_path)
    text = str(err.value)
    assert "\n" not in text
    assert "validation.json" in text and "test.json" in text
    assert len(err.value.problems) == 2
