import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import Registry
from ultrabench_eval.data.task_card import TaskCard, read_card, register_cards

CARD = """
name: thyroid-toy
dataset: thyroid_toy_v1
classes: [benign, malignant]
group_field: patient
organ: thyroid
split_sizes: {train: 10, validation: 2, test: 4}
"""


def test_read_card(tmp_path):
    path = tmp_path / "thyroid-toy.yaml"
    path.write_text(CARD)
    card = read_card(path)
    assert card.classes == ("benign", "malignant") and card.num_classes == 2
    assert card.label_field == "label" and card.split_sizes["test"] == 4
    assert card.path == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nclasses: [a, b]\n", "missing required field.*dataset"),
        ("name: x\ndataset: y\nclasses: [a, b]\ncolour: red\n", "unknown field.*colour"),
        ("name: x\ndataset: y\nclasses: [a]\n", "at least two class names"),
        ("name: x\ndataset: y\nclasses: [a, b]\nsplit_sizes: {val: 3}\n", "unknown split"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "cannot read task card"),
    ],
)
def test_bad_cards_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_card(path)


def test_extra_card_folder_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "thyroid-toy.yaml").write_text(CARD)
    monkeypatch.setenv("UBENCH_TASKS", str(tmp_path))
    registry = Registry("task", "ubench tasks")
    register_cards(registry)
    assert isinstance(registry.get("thyroid-toy"), TaskCard)


def test_missing_extra_folder_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("UBENCH_TASKS", str(tmp_path / "nope"))
    with pytest.raises(UserError, match="does not exist"):
        register_cards(Registry("task", "ubench tasks"))
