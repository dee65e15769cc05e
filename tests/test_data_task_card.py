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
        (
            "name: x\ndataset: y\nclasses: [a, b]\nsplit_sizes: {val: 3}\n",
            "split_sizes has unknown key .val.",
        ),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: [unclosed\n", "cannot read task card .*: expected .* at line 2, column 1"),
        ("name: x\ndataset: y\nclasses: [a, b]\nsplit_sizes: {train: x}\n", "split_sizes.train"),
        ("name: x\ndataset: y\nclasses: 3\n", "classes must be a list, got 3"),
        ("dataset: y\nclasses: [a, b]\n", r"missing required field\(s\) name \(the task's"),
        ("name: x\ndataset: y\nclasses: [a, b]\ngenerator: gan\n", "generator must be 'synth'"),
        ("name: x\ndataset: y\nclasses: [no, yes]\n", r"classes\[0\] must be text \(quote it\)"),
        ("name: x\ndataset: y\nclasses: [a, b]\npath: /x\n", r"unknown field\(s\) path"),
    ],
)
def test_bad_cards_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        read_card(path)
    assert str(caught.value).startswith(f"{path}: ") or "cannot read" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_numbers_are_read_as_text_and_blank_keys_as_left_out(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndataset: y\nclasses: [0, 1]\norgan:\nlicense: 2.0\n")
    card = read_card(path)
    assert card.classes == ("0", "1") and card.organ == "" and card.license == "2.0"


def test_every_shipped_card_loads():
    from ultrabench_eval.core.config import PACKAGE_DIR

    paths = sorted((PACKAGE_DIR.parent / "tasks").glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        assert read_card(path).name == path.stem


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


# card values that were accepted and ignored, or tracebacks.
_GOOD = "name: x\ndataset: y\nclasses: [a, b]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_GOOD + "metric: accuracy_top5_bogus\n", "metric must be 'macro_f1'"),
        (_GOOD + "metric: [macro_f1]\n", "metric must be 'macro_f1'"),
        ("name: x\ndataset: y\nclasses: [a, b, a]\n", r"classes names 'a' more than once"),
        ("name: 123\ndataset: y\nclasses: [a, b]\n", r"name must be text \(quote it\), got 123"),
        ("name: x\ndataset: 1.10\nclasses: [a, b]\n", r"dataset must be text .*got 1.1"),
        (_GOOD + "split_sizes: [1, 2]\n", "split_sizes must be a mapping"),
        (_GOOD + "split_sizes: {train: many}\n", r"split_sizes.train must be a whole number"),
        (_GOOD + "organ: [liver\n", r"at line \d+, column \d+ \(fix the YAML syntax\)"),
        (_GOOD + "organ: !!python/object/apply:os.system [x]\n", r"python/object.* at line 4,"),
    ],
)
def test_card_values_that_cannot_be_honoured_are_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as caught:
        read_card(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


SEG = "name: s\ndataset: s_v1\nclasses: [background, tumour]\nkind: segmentation\n"


def test_segmentation_card(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SEG + "mask_field: tumor_mask\nmask_values: [0, 255]\n")
    card = read_card(path)
    assert card.is_segmentation and card.mask_field == "tumor_mask"
    assert card.pixel_values == (0, 255) and card.score_metric == "dice"
    plain = read_card(_write(tmp_path, SEG + "mask_field: m\n"))
    assert plain.pixel_values == (0, 1)
    classification = read_card(_write(tmp_path, CARD))
    assert not classification.is_segmentation and classification.score_metric == "macro_f1"


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SEG, "needs `mask_field`"),
        (SEG + "mask_field: m\nmask_values: [0]\n", "1 pixel value.*for 2 classes"),
        (SEG + "mask_field: m\nmask_values: [7, 7]\n", "repeats a pixel value"),
        (SEG + "mask_field: m\nmask_values: [0, 256]\n", r"mask_values\[1\] must be at most 255"),
        (SEG + "mask_field: m\nmetric: macro_f1\n", "scored by `metric: dice`"),
        (CARD + "mask_field: m\n", "belong to segmentation cards"),
        (CARD + "metric: dice\n", "scored by `metric: macro_f1`"),
        (CARD + "kind: detection\n", "kind must be"),
    ],
)
def test_bad_segmentation_cards(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        read_card(_write(tmp_path, text))
