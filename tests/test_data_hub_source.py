"""Where a Hugging Face dataset comes from: hub ids (`hf://org/name@rev`) parse or are one line;
`--data` names a HubSource for a hub id, a save_to_disk folder, parquet files, an imagefolder or
one parquet file, and keeps its old meaning (None) for a dataset root or a task folder;
`--hf-splits` parses or is one line; a source is exactly one of id and path, and two folders of
one name are two sources; a task card's `hf:` block parses, its relative path read against the
card's folder, and a wrong value in it is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_dataset
from hub_datasets import imagefolder, one_line, parquet_folder, save_to_disk

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub.source import (
    HubSource,
    is_local_dataset,
    parse_hub_id,
    parse_split_map,
    source_from_data_flag,
)
from ultrabench_eval.data.task_card import TaskCard, read_card

SMALL = {"train": 4, "validation": 2, "test": 2}
CARD = {"name": "thyroid", "dataset": "thyroid_v1", "classes": ["benign", "malignant"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf://org/name", ("org/name", None)),
        ("hf://org/thyroid-us@main", ("org/thyroid-us", "main")),
        ("hf://org/name@0123abcd", ("org/name", "0123abcd")),
        ("hf://datasets/org/name", ("org/name", None)),
        ("hf://datasets/org/name@v1.0", ("org/name", "v1.0")),
        ("org/my_data.v2", ("org/my_data.v2", None)),
        ("hf://org/name/", ("org/name", None)),
    ],
)
def test_hub_ids_parse(text, expected):
    assert parse_hub_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hf://",
        "hf://name",
        "hf://org/name@",
        "hf://org/name/extra",
        "hf://org/na me",
        "hf://-org/name",
        "hf://datasets/name",
        "hf://org/@main",
    ],
)
def test_a_bad_hub_id_isone_line(text):
    with pytest.raises(UserError) as exc:
        parse_hub_id(text)
    line = one_line(exc)
    assert f"'{text}' is not a hub dataset id" in line and "hf://ORG/NAME" in line


def test_data_flag_names_a_hub_dataset():
    source = source_from_data_flag("hf://org/thyroid-us@v2")
    assert source == HubSource(id="org/thyroid-us", revision="v2")
    assert source.is_hub and source.label == "hf://org/thyroid-us@v2"
    with pytest.raises(UserError):
        source_from_data_flag("hf://thyroid-us")


@pytest.fixture
def task_folder(tmp_path) -> tuple[TaskCard, Path]:
    card = make_dataset(tmp_path / "data", counts=dict(SMALL))
    return card, tmp_path / "data" / card.dataset


@pytest.mark.parametrize("build", [save_to_disk, parquet_folder, imagefolder])
def test_data_flag_names_a_local_dataset(tmp_path, task_folder, build):
    card, folder = task_folder
    out = build(folder, card, tmp_path / build.__name__)
    source = source_from_data_flag(str(out))
    assert source == HubSource(path=str(out.resolve()))
    assert not source.is_hub and source.label == str(out.resolve())


def test_data_flag_names_a_single_data_file(tmp_path, task_folder):
    card, folder = task_folder
    out = parquet_folder(folder, card, tmp_path / "pq")
    file = out / "data" / "train-00000-of-00001.parquet"
    assert source_from_data_flag(str(file)) == HubSource(path=str(file.resolve()))
    arrow = tmp_path / "train.arrow"
    arrow.write_bytes(b"")
    assert source_from_data_flag(str(arrow)) == HubSource(path=str(arrow.resolve()))


def test_a_dataset_saved_as_one_split_is_a_source(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "state.json").write_text("{}")
    assert is_local_dataset(tmp_path / "ds")


def test_data_flag_keeps_its_meaning_for_a_dataset_root_and_a_task_folder(tmp_path, task_folder):
    _, folder = task_folder
    assert source_from_data_flag(str(folder.parent)) is None  # a root of task folders
    assert source_from_data_flag(str(folder)) is None  # a task folder (images inside)
    assert source_from_data_flag(str(tmp_path / "missing")) is None
    assert source_from_data_flag(None) is None
    assert source_from_data_flag("") is None
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(UserError, match=r"notes.txt is a file, but neither a parquet nor an arrow"):
        source_from_data_flag(str(tmp_path / "notes.txt"))  # a typo'd dataset, not a root
    (tmp_path / "empty").mkdir()
    assert source_from_data_flag(str(tmp_path / "empty")) is None


def test_hidden_files_do_not_make_a_folder_a_dataset(tmp_path):
    (tmp_path / "ds" / ".cache").mkdir(parents=True)
    (tmp_path / "ds" / ".cache" / "x.parquet").write_bytes(b"")
    assert not is_local_dataset(tmp_path / "ds")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "train=train,validation=valid,test=test",
            {"train": "train", "validation": "valid", "test": "test"},
        ),
        (" validation = dev , test=eval,", {"validation": "dev", "test": "eval"}),
        ("test=testing", {"test": "testing"}),
        ("", {}),
    ],
)
def test_split_maps_parse(text, expected):
    assert parse_split_map(text) == expected


@pytest.mark.parametrize("text", ["dev=valid", "train", "train=", "=train", "train:train"])
def test_a_bad_split_map_isone_line(text):
    with pytest.raises(UserError) as exc:
        parse_split_map(text)
    line = one_line(exc)
    assert f"--hf-splits '{text}'" in line and "OURS=THEIRS" in line


def test_a_source_is_exactly_one_of_id_and_path():
    with pytest.raises(ValueError, match="exactly one of id"):
        HubSource()
    with pytest.raises(ValueError, match="exactly one of id"):
        HubSource(id="org/name", path="/data/ds")
    with pytest.raises(ValueError, match="dev"):
        HubSource(id="org/name", splits={"dev": "valid"})
    assert HubSource(id="org/name").is_hub
    assert not HubSource(path="/data/ds").is_hub


def test_two_folders_of_one_name_are_two_sources(tmp_path):
    first = HubSource(path=str(tmp_path / "a" / "thyroid"))
    second = HubSource(path=str(tmp_path / "b" / "thyroid"))
    assert first.slug != second.slug
    assert first.slug.startswith("thyroid-") and second.slug.startswith("thyroid-")
    assert first.slug == HubSource(path=str(tmp_path / "a" / "thyroid")).slug
    assert HubSource(id="org/thyroid-us").slug == "org--thyroid-us"
    assert HubSource(id="org/thyroid-us", config="v2").slug == "org--thyroid-us@v2"
    odd = HubSource(path=str(tmp_path / "my data (copy)"))
    assert "/" not in odd.slug and " " not in odd.slug and "(" not in odd.slug


def test_a_card_with_an_hf_block_parses(tmp_path):
    card = TaskCard.from_dict(
        {
            **CARD,
            "hf": {
                "id": "org/thyroid-us",
                "revision": "main",
                "label_column": "diagnosis",
                "group_column": "patient_id",
                "splits": {"validation": "valid", "test": "eval"},
                "validation_fraction": 0.2,
                "seed": 3,
            },
        }
    )
    assert card.hf == HubSource(
        id="org/thyroid-us",
        revision="main",
        label_column="diagnosis",
        group_column="patient_id",
        splits={"validation": "valid", "test": "eval"},
        validation_fraction=0.2,
        seed=3,
    )


def test_a_cards_relative_dataset_path_is_read_against_its_folder(tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "thyroid.yaml").write_text(
        "name: thyroid\ndataset: thyroid_v1\nclasses: [benign, malignant]\n"
        "hf:\n  path: ../datasets/thyroid\n  image_column: scan\n"
    )
    card = read_card(cards / "thyroid.yaml")
    assert card.hf.path == str((tmp_path / "datasets" / "thyroid").resolve())
    assert card.hf.image_column == "scan"
    absolute = TaskCard.from_dict({**CARD, "hf": {"path": "/srv/thyroid"}}, cards / "x.yaml")
    assert absolute.hf.path == str(Path("/srv/thyroid").resolve())


@pytest.mark.parametrize(
    ("hf", "says"),
    [
        ({"id": "org/name", "colour": "red"}, "unknown field(s) hf.colour"),
        ({"id": "org/name", "validation_fraction": 0}, "hf.validation_fraction must be greater"),
        ({"id": "org/name", "validation_fraction": 0.9}, "hf.validation_fraction must be at most"),
        ({"id": "org/name", "splits": {"dev": "valid"}}, "splits maps dev"),
        ({"id": "org/name", "seed": -1}, "hf.seed must be at least 0"),
        ({"id": "org/name", "image_column": ""}, "hf.image_column must not be empty"),
        ({}, "exactly one of id"),
        ({"id": "org/name", "path": "/data/ds"}, "exactly one of id"),
    ],
)
def test_a_wrong_hf_block_isone_line(tmp_path, hf, says):
    with pytest.raises(UserError) as exc:
        TaskCard.from_dict({**CARD, "hf": hf}, tmp_path / "thyroid.yaml")
    line = one_line(exc)
    assert line.startswith(f"{tmp_path / 'thyroid.yaml'}: ") and says in line


def test_a_generated_card_cannot_have_an_hf_block():
    with pytest.raises(UserError) as exc:
        TaskCard.from_dict({**CARD, "generator": "synth", "hf": {"id": "org/name"}})
    assert "generated task" in one_line(exc)
