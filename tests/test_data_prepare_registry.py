"""The shipped task cards and the preparers they name agree."""

import importlib

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.prepare.registry import PREPARERS, preparer_for, preparer_for_task
from ultrabench_eval.data.prepare.ultrabench import output_folder
from ultrabench_eval.data.task_card import TaskCard

PAPER_TASKS = ("aul", "busbra", "butterfly", "fatty-liver", "gbcu", "mmotu", "pocus", "tn5000")
# UltraBench's seven segmentation tasks: (mask field, classes)
SEGMENTATION_TASKS = {
    "aul-liver-seg": ("liver_mask", ("background", "liver")),
    "aul-mass-seg": ("mass_mask", ("background", "mass")),
    "camus-seg": ("mask", ("background", "left ventricle", "myocardium", "left atrium")),
    "mmotu-seg": ("tumor_mask_binary", ("background", "tumour")),
    "open-kidney-seg": ("capsule_mask", ("background", "kidney capsule")),
    "psfhs-seg": ("psfh_mask", ("background", "pubic symphysis", "fetal head")),
    "stanford-thyroid-seg": ("tumor_mask", ("background", "nodule")),
}
# the processor and its output-name attribute behind each ultrabench preparer
PROCESSORS = {
    "ultrabench:aul": ("aul", "OUTPUT_NAME_MASS"),
    "ultrabench:aul-liver": ("aul", "OUTPUT_NAME_LIVER"),
}


def test_every_paper_and_segmentation_task_and_camus_has_a_preparer_writing_its_folder():
    names = (*PAPER_TASKS, "camus", *SEGMENTATION_TASKS)
    for name in names:
        card = TASKS.get(name)
        preparer = preparer_for(card)
        assert preparer.dataset == card.dataset
        assert preparer is preparer_for_task(name)
    used = {TASKS.get(n).preparer for n in names}
    assert used == set(PREPARERS)


def test_segmentation_cards_name_their_masks_classes_and_published_sizes():
    for name, (field, classes) in SEGMENTATION_TASKS.items():
        card = TASKS.get(name)
        assert card.is_segmentation and card.score_metric == "dice"
        assert card.mask_field == field and card.classes == classes
        # every processor writes class indices: no mask_values needed
        assert card.mask_values is None and card.pixel_values == tuple(range(len(classes)))
        assert card.split_sizes and card.source and card.license and card.citation
    # a folder shared with a classification task has that task's preparer
    for seg, cls in (("aul-mass-seg", "aul"), ("camus-seg", "camus"), ("mmotu-seg", "mmotu")):
        assert TASKS.get(seg).dataset == TASKS.get(cls).dataset
        assert preparer_for_task(seg) is preparer_for_task(cls)
    sizes = {n: TASKS.get(n).split_sizes for n in SEGMENTATION_TASKS}
    assert sizes["aul-mass-seg"] == TASKS.get("aul").split_sizes
    assert sizes["aul-liver-seg"] == {"train": 528, "validation": 59, "test": 147}
    assert sizes["psfhs-seg"] == {"train": 977, "validation": 109, "test": 272}
    assert sizes["open-kidney-seg"] == {"train": 369, "validation": 42, "test": 103}
    assert sizes["camus-seg"] == {"test": 3792} and sizes["stanford-thyroid-seg"] == {"test": 1970}


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
        processor, attribute = PROCESSORS.get(preparer.id, (name, "OUTPUT_NAME"))
        module = importlib.import_module(f"ultrabench.datasets.{processor}")
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


def test_ubench_prepare_finds_every_segmentation_tasks_preparer(tmp_path, capsys):
    from ultrabench_eval.cli.parser import main

    downloads = {
        "aul-liver-seg": "AUL",
        "aul-mass-seg": "AUL",
        "camus-seg": "CAMUS",
        "mmotu-seg": "MMOTU",
        "open-kidney-seg": "Open Kidney",
        "psfhs-seg": "PSFHS",
        "stanford-thyroid-seg": "Stanford Thyroid",
    }
    assert set(downloads) == set(SEGMENTATION_TASKS)
    for name, download in downloads.items():
        code = main(["prepare", name, str(tmp_path / "gone"), str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, name
        assert f"does not exist (expected the {download} download)" in err
    assert not (tmp_path / "out").exists()
