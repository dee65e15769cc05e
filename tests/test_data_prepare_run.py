"""`prepare` leaves the task folder whole and valid, or absent."""

import json
from dataclasses import replace

import pytest
from conftest import make_dataset
from raw_trees import write_busbra

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.prepare.base import Preparer
from ultrabench_eval.data.prepare.registry import PREPARERS
from ultrabench_eval.data.prepare.run import prepare
from ultrabench_eval.data.task_card import TaskCard


def _card(preparer_id, dataset="toy_v1"):
    return TaskCard(name="toy", dataset=dataset, classes=("a", "b"), preparer=preparer_id)


def _register(monkeypatch, write, dataset="toy_v1"):
    preparer = Preparer("test:toy", dataset, "anything", "nowhere", "none", lambda raw: raw, write)
    monkeypatch.setitem(PREPARERS, preparer.id, preparer)
    return _card(preparer.id, dataset)


def test_prepared_folder_records_how_it_was_made(tmp_path):
    write_busbra(tmp_path / "raw")
    prepared = prepare(TASKS.get("busbra"), tmp_path / "raw", tmp_path / "data")
    assert prepared.folder == (tmp_path / "data" / "busbra_v1").resolve()
    assert prepared.sizes == {"train": 14, "validation": 2, "test": 4}
    meta = json.loads((prepared.folder / "prepare.json").read_text())
    assert meta["preparer"] == "ubench:busbra" and meta["split_sizes"] == prepared.sizes
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["busbra_v1"]


def test_an_existing_folder_is_kept_unless_overwrite(tmp_path):
    write_busbra(tmp_path / "raw")
    target = tmp_path / "data" / "busbra_v1"
    target.mkdir(parents=True)
    (target / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="busbra_v1 already exists; remove it, .* --overwrite"):
        prepare(TASKS.get("busbra"), tmp_path / "raw", tmp_path / "data")
    assert (target / "mine.txt").read_text() == "keep"
    prepare(TASKS.get("busbra"), tmp_path / "raw", tmp_path / "data", overwrite=True)
    assert not (target / "mine.txt").exists() and (target / "train.json").is_file()
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["busbra_v1"]


@pytest.mark.parametrize("failure", [UserError("raw image unreadable"), KeyboardInterrupt()])
def test_a_failure_midway_leaves_nothing(tmp_path, monkeypatch, failure):
    def write(raw, out):
        (out / "toy_v1" / "images").mkdir(parents=True)
        (out / "toy_v1" / "images" / "half.png").write_bytes(b"\x89PNG")
        raise failure

    card = _register(monkeypatch, write)
    (tmp_path / "raw").mkdir()
    with pytest.raises(type(failure)):
        prepare(card, tmp_path / "raw", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_an_invalid_result_is_refused_and_not_published(tmp_path, monkeypatch):
    def write(raw, out):
        (out / "toy_v1").mkdir()
        (out / "toy_v1" / "train.json").write_text("[]")

    card = _register(monkeypatch, write)
    (tmp_path / "raw").mkdir()
    with pytest.raises(
        UserError,
        match=r"invalid toy_v1 folder \(train.json has no records; missing split file validation",
    ):
        prepare(card, tmp_path / "raw", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_a_bad_raw_tree_is_refused_before_anything_is_created(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserError, match="does not hold the BUS-BRA download"):
        prepare(TASKS.get("busbra"), tmp_path / "raw", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_the_preparer_must_write_the_card_s_folder(tmp_path, monkeypatch):
    card = _register(monkeypatch, lambda raw, out: (out / "other").mkdir())
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserError, match="wrote no toy_v1 folder"):
        prepare(card, tmp_path / "raw", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def _toy_preparer(monkeypatch, calls):
    """test:toy writes a valid toy_v1 folder (and counts its runs); cards `toy` and `toy-seg`
    share it."""

    def write(raw, out):
        calls.append(raw)
        make_dataset(out, counts={"train": 2, "validation": 2, "test": 2}, size=(8, 8))

    card = _register(monkeypatch, write)
    return card, replace(card, name="toy-seg")


def test_a_folder_its_own_preparer_made_is_not_prepared_again(tmp_path, monkeypatch):
    calls = []
    first, second = _toy_preparer(monkeypatch, calls)
    (tmp_path / "raw").mkdir()
    prepared = prepare(first, tmp_path / "raw", tmp_path / "data")
    assert not prepared.already_prepared and len(calls) == 1
    (prepared.folder / "mine.txt").write_text("kept")
    # the second task of the folder: nothing is written, and the raw download is not read
    again = prepare(second, tmp_path / "gone", tmp_path / "data")
    assert len(calls) == 1 and (prepared.folder / "mine.txt").read_text() == "kept"
    assert again.already_prepared and again.folder == prepared.folder
    assert again.preparer == "test:toy" and again.sizes == prepared.sizes
    assert again.tasks == ("toy", "toy-seg")
    assert again.already_prepared_line("toy-seg", "data") == (
        f"{prepared.folder} is already prepared by test:toy (the folder of tasks toy, toy-seg); "
        "check it with `ubench tasks check toy-seg data` (--overwrite prepares it again)"
    )
    # --overwrite still prepares it again
    prepare(second, tmp_path / "raw", tmp_path / "data", overwrite=True)
    assert len(calls) == 2 and not (prepared.folder / "mine.txt").exists()


def test_a_folder_another_preparer_made_still_needs_overwrite(tmp_path, monkeypatch):
    card, _ = _toy_preparer(monkeypatch, [])
    (tmp_path / "raw").mkdir()
    prepared = prepare(card, tmp_path / "raw", tmp_path / "data")
    record = json.loads((prepared.folder / "prepare.json").read_text())
    (prepared.folder / "prepare.json").write_text(json.dumps({**record, "preparer": "by:hand"}))
    with pytest.raises(UserError, match=r"toy_v1 already exists \(made by preparer 'by:hand'\)"):
        prepare(card, tmp_path / "raw", tmp_path / "data")
    # a damaged or incomplete record is no proof either
    for text in ("{", json.dumps({**record, "split_sizes": {"train": 2}})):
        (prepared.folder / "prepare.json").write_text(text)
        with pytest.raises(UserError, match="toy_v1 already exists; remove it"):
            prepare(card, tmp_path / "raw", tmp_path / "data")


def test_the_tasks_sharing_a_folder_come_from_the_registered_cards(tmp_path):
    # aul and aul-mass-seg read the folder ultrabench:aul writes; aul-liver-seg has its own
    folder = tmp_path / "data" / "aul_mass_v1.0.1"
    folder.mkdir(parents=True)
    sizes = {"train": 529, "validation": 59, "test": 147}
    record = {"task": "aul", "dataset": folder.name, "preparer": "ultrabench:aul"}
    (folder / "prepare.json").write_text(json.dumps({**record, "split_sizes": sizes}))
    prepared = prepare(TASKS.get("aul-mass-seg"), tmp_path / "raw", tmp_path / "data")
    assert prepared.already_prepared and prepared.tasks == ("aul", "aul-mass-seg")
    assert prepared.sizes == sizes
