"""The shipped task cards and the preparers they name agree."""

import importlib

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.prepare.registry import PREPARERS, preparer_for, preparer_for_task
from ultrabench_eval.data.prepare.ultrabench import output_folder
from ultrabench_eval.data.task_card import TaskCard

PAPER_TASKS = ("aul", "busbra", "butterfly", "fatty-liver", "gbcu", "mmotu", "pocus", "tn5000")


def test_every_paper_task_and_camus_has_a_preparer_writing_its_folder():
    for name in (*PAPER_TASKS, "camus"):
        card = TASKS.get(name)
        preparer = preparer_for(card)
        assert preparer.dataset == card.dataset
        assert preparer is preparer_for_task(name)
    used = {TASKS.get(n).preparer for n in (*PAPER_TASKS, "camus")}
    assert used == set(PREPARERS)


def test_paper_tasks_carry_the_published_split_sizes():
    published = {
        "aul": (529, 59, 147),
        "busbra": (765, 86, 213),
        "butterfly": (28053, 6272, 6751),
        "fatty-liver": (390, 50, 110),
        "gbcu": (1019, 114, 122),
        "mmotu": (800, 200, 469),
        "pocus": (1444, 177, 443),
        "tn5000": (3500, 500, 1000),
    }
    classes = {"aul": 3, "busbra": 2, "butterfly": 9, "fatty-liver": 2, "gbcu": 3, "mmotu": 8}
    classes.update({"pocus": 3, "tn5000": 2})
    for name, sizes in published.items():
        card = TASKS.get(name)
        assert tuple(card.split_sizes[s] for s in ("train", "validation", "test")) == sizes
        assert card.num_classes == classes[name]
        assert card.source and card.license and card.citation and card.organ


def test_ultrabench_preparers_name_the_installed_processors_folders():
    for preparer in PREPARERS.values():
        kind, name = preparer.id.split(":")
        if kind != "ultrabench":
            continue
        module = importlib.import_module(f"ultrabench.datasets.{name}")
        attribute = "OUTPUT_NAME_MASS" if name == "aul" else "OUTPUT_NAME"
        assert output_folder(module, attribute) == preparer.dataset


def test_cards_without_or_with_a_wrong_preparer_are_user_errors():
    with pytest.raises(
        UserError, match=r"task 'synth-lesion' has no preparer \(run `ubench synth`\)"
    ):
        preparer_for(TASKS.get("synth-lesion"))
    card = TaskCard(name="x", dataset="x_v1", classes=("a", "b"), preparer="ultrabench:nope")
    with pytest.raises(UserError, match="names preparer 'ultrabench:nope', which does not exist"):
        preparer_for(card)
    card = TaskCard(name="x", dataset="x_v1", classes=("a", "b"), preparer="ubench:busbra")
    with pytest.raises(
        UserError, match="expects folder x_v1, but preparer 'ubench:busbra' writes busbra_v1"
    ):
        preparer_for(card)
