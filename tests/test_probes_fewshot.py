import numpy as np
import pytest

from ultrabench_eval.probes.fewshot import fraction_label, subsample


@pytest.fixture
def labels():
    return np.repeat(np.arange(3), [50, 30, 4])


def test_stratified_with_at_least_one_per_class(labels):
    idx = subsample(labels, 0.1, seed=0, n_classes=3)
    counts = np.bincount(labels[idx], minlength=3)
    assert list(counts) == [5, 3, 1]
    assert np.all(np.diff(idx) > 0)


def test_nested_for_a_seed(labels):
    small = set(subsample(labels, 0.05, seed=3, n_classes=3))
    large = set(subsample(labels, 0.5, seed=3, n_classes=3))
    assert small < large


def test_seeds_differ_and_repeat(labels):
    a = subsample(labels, 0.2, seed=0, n_classes=3)
    assert np.array_equal(a, subsample(labels, 0.2, seed=0, n_classes=3))
    assert not np.array_equal(a, subsample(labels, 0.2, seed=1, n_classes=3))


def test_full_fraction_is_everything(labels):
    assert np.array_equal(subsample(labels, 1.0, seed=9, n_classes=3), np.arange(len(labels)))
    with pytest.raises(ValueError):
        subsample(labels, 0.0, seed=0, n_classes=3)


def test_labels():
    assert fraction_label(1.0) == "100%" and fraction_label(0.05) == "5%"


def test_one_percent_keeps_every_class_and_shots_nest():
    from ultrabench_eval.probes.fewshot import Budget, budgets

    labels = np.repeat(np.arange(5), [300, 120, 40, 9, 2])
    idx = Budget(fraction=0.01).indices(labels, seed=4, n_classes=5)
    assert list(np.bincount(labels[idx], minlength=5)) == [3, 1, 1, 1, 1]
    one = set(Budget(shots=1).indices(labels, 2, 5))
    five = set(Budget(shots=5).indices(labels, 2, 5))
    assert one < five
    assert list(np.bincount(labels[sorted(five)], minlength=5)) == [5, 5, 5, 5, 2]
    # shots and fractions of one seed draw from the same per-class order
    assert one <= set(Budget(fraction=0.01).indices(labels, 2, 5))
    assert [b.label for b in budgets((1.0, 0.05), (10,))] == ["100%", "5%", "10-shot"]
    with pytest.raises(ValueError):
        Budget(fraction=0.5, shots=3)
    with pytest.raises(ValueError):
        Budget(shots=0)


def test_budget_labels_and_orders_in_one_place():
    from ultrabench_eval.probes.fewshot import Budget

    full, half, one, five = (
        Budget(fraction=1.0),
        Budget(fraction=0.5),
        Budget(shots=1),
        Budget(shots=5),
    )
    assert [b.label for b in (full, half, five)] == ["100%", "50%", "5-shot"]
    assert [b.row_label for b in (full, half, five)] == ["100 %", "50 %", "5-shot"]
    assert [b.description for b in (full, half, five)] == [
        "all training labels",
        "50 % of the training labels",
        "5 training labels per class",
    ]
    assert [b.axis_value for b in (full, half, five)] == [100.0, 50.0, 5.0]
    shuffled = [five, half, one, full]
    # tables: all labels first, fractions down, then shots from many to few
    assert sorted(shuffled, key=lambda b: b.largest_first) == [full, half, five, one]
    # few-shot rows and curves: fractions up, then shots up
    assert sorted(shuffled, key=lambda b: b.smallest_first) == [half, full, one, five]


def test_the_budget_a_record_names():
    from ultrabench_eval.probes.fewshot import Budget

    assert Budget.of(0.1, None) == Budget(fraction=0.1)
    assert Budget.of(None, 5) == Budget(shots=5)
    assert Budget.of(None, None) == Budget(fraction=1.0)  # the first records: all labels
    with pytest.raises(ValueError):
        Budget.of(1.5, None)
