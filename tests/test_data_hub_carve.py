"""`carve_validation`: a validation split carved from train is drawn by its seed (the same seed,
the same rows), takes about the fraction asked, class by class (every class in validation when it
has rows enough, and every class keeping rows in train), whole groups at a time; it works without
labels (segmentation) and without groups, and a tiny train still gives a validation split when
one row can be spared."""

from __future__ import annotations

import numpy as np
import pytest

from ultrabench_eval.data.hub.carve import carve_validation

# 60 / 30 / 10 rows of three classes, interleaved as a dataset's rows would be
LABELS = np.array([0, 1, 0, 1, 0, 2] * 10 + [0, 1, 0, 0] * 10, dtype=np.int64)


def _partition(carved, count: int) -> None:
    """Train and validation are disjoint, ascending, and cover every row."""
    assert np.all(np.diff(carved.train) > 0) and np.all(np.diff(carved.validation) > 0)
    assert not set(carved.train) & set(carved.validation)
    assert sorted([*carved.train, *carved.validation]) == list(range(count))


def test_the_same_seed_carves_the_same_rows_and_another_seed_others():
    first = carve_validation(LABELS, None, 0.2, seed=0)
    again = carve_validation(LABELS, None, 0.2, seed=0)
    other = carve_validation(LABELS, None, 0.2, seed=1)
    assert np.array_equal(first.validation, again.validation)
    assert np.array_equal(first.train, again.train)
    assert not np.array_equal(first.validation, other.validation)
    for carved in (first, other):
        _partition(carved, len(LABELS))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_the_fraction_is_taken_class_by_class(fraction):
    carved = carve_validation(LABELS, None, fraction, seed=3)
    _partition(carved, len(LABELS))
    assert carved.stratified and not carved.grouped
    assert abs(len(carved.validation) - fraction * len(LABELS)) <= 3
    in_validation = np.bincount(LABELS[carved.validation], minlength=3)
    in_train = np.bincount(LABELS[carved.train], minlength=3)
    for label, rows in enumerate(np.bincount(LABELS)):
        assert in_validation[label] >= 1, f"class {label} has no validation row"
        assert abs(in_validation[label] - fraction * rows) <= 1
        assert in_train[label] >= 1


def test_a_class_with_one_row_keeps_it_in_train():
    labels = np.array([0] * 20 + [1] * 20 + [2], dtype=np.int64)
    carved = carve_validation(labels, None, 0.5, seed=0)
    assert 40 in carved.train  # the only row of class 2
    assert set(labels[carved.validation]) == {0, 1}
    assert set(labels[carved.train]) == {0, 1, 2}


def test_groups_are_carved_whole():
    # 20 patients of 3 images each; a patient's images share its class
    groups = [f"p{i // 3}" for i in range(60)]
    labels = np.array([(i // 3) % 2 for i in range(60)], dtype=np.int64)
    carved = carve_validation(labels, groups, 0.2, seed=5)
    _partition(carved, 60)
    assert carved.grouped and carved.stratified
    train_groups = {groups[i] for i in carved.train}
    validation_groups = {groups[i] for i in carved.validation}
    assert validation_groups and not train_groups & validation_groups
    assert len(carved.validation) % 3 == 0 and 9 <= len(carved.validation) <= 15
    assert set(labels[carved.validation]) == {0, 1}


def test_rows_without_a_group_are_each_their_own_group():
    groups = ["p0", "p0", "p0", "p0", None, None, None, None, None, None]
    carved = carve_validation(None, groups, 0.3, seed=0)
    _partition(carved, 10)
    assert not ({0, 1, 2, 3} & set(carved.validation)) or {0, 1, 2, 3} <= set(carved.validation)


def test_no_labels_with_groups_is_grouped_not_stratified():
    groups = [f"case{i // 2}" for i in range(40)]
    carved = carve_validation(None, groups, 0.25, seed=1)
    _partition(carved, 40)
    assert carved.grouped and not carved.stratified
    assert not {groups[i] for i in carved.train} & {groups[i] for i in carved.validation}
    assert abs(len(carved.validation) - 10) <= 2


def test_no_labels_and_no_groups_carves_by_row():
    """A segmentation train without a patient column: only the number of rows is known."""
    carved = carve_validation(None, None, 0.2, seed=0, count=50)
    _partition(carved, 50)
    assert not carved.grouped and not carved.stratified
    assert len(carved.validation) == 10
    again = carve_validation(None, None, 0.2, seed=0, count=50)
    assert np.array_equal(carved.validation, again.validation)


def test_no_labels_and_no_groups_needs_the_row_count():
    with pytest.raises(ValueError, match="count"):
        carve_validation(None, None, 0.2, seed=0)


def test_a_tiny_train_still_gives_a_validation_split():
    # two rows per class: 0.1 of them rounds to none in each class, yet one row can be spared
    labels = np.array([0, 1, 0, 1], dtype=np.int64)
    carved = carve_validation(labels, None, 0.1, seed=0)
    _partition(carved, 4)
    assert len(carved.validation) == 1
    assert set(labels[carved.train]) == {0, 1}  # both classes still trained


def test_a_tiny_ungrouped_unlabelled_train_gives_a_validation_split():
    carved = carve_validation(None, None, 0.1, seed=0, count=3)
    _partition(carved, 3)
    assert len(carved.validation) == 1


@pytest.mark.parametrize(
    ("labels", "groups"),
    [
        (np.array([0, 1], dtype=np.int64), None),  # one row per class: none to spare
        (np.array([0, 1, 0, 1], dtype=np.int64), ["p"] * 4),  # one patient
        (np.array([], dtype=np.int64), None),  # an empty train
    ],
)
def test_a_train_that_cannot_spare_a_row_keeps_them_all(labels, groups):
    carved = carve_validation(labels, groups, 0.5, seed=0)
    assert len(carved.validation) == 0
    assert list(carved.train) == list(range(len(labels)))
