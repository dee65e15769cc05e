"""macro_f1 must equal scikit-learn's f1_score(average="macro", zero_division=0) bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

from ultrabench_eval.probes.metrics import (
    confusion_matrix,
    macro_f1,
    macro_f1_batched,
    weighted_macro_f1,
)


def sk_macro_f1(t: np.ndarray, p: np.ndarray) -> float:
    return float(f1_score(t, p, average="macro", zero_division=0))


def random_cases(n_cases: int, seed: int):
    """Random label vectors covering the awkward cases: labels missing from the prediction or
    from the truth, binary, single-class predictions, perfect predictions, many labels (> 8,
    where numpy's pairwise summation changes shape), offset label values."""
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        n = int(rng.integers(1, 80))
        n_labels = int(rng.choice([1, 2, 3, 5, 9, 17, 40]))
        t = rng.integers(0, n_labels, n)
        kind = i % 6
        if kind == 0:  # independent: classes missing on either side
            p = rng.integers(0, n_labels, n)
        elif kind == 1:  # prediction uses labels the truth never has
            p = rng.integers(0, n_labels + 3, n)
        elif kind == 2:  # a single predicted class
            p = np.full(n, rng.integers(0, n_labels + 1))
        elif kind == 3:  # mostly right
            p = np.where(rng.random(n) < 0.8, t, rng.integers(0, n_labels, n))
        elif kind == 4:  # binary
            t = rng.integers(0, 2, n)
            p = rng.integers(0, 2, n)
        else:  # perfect
            p = t.copy()
        offset = int(rng.integers(0, 50))
        yield t + offset, p + offset


def test_macro_f1_equals_sklearn_exactly() -> None:
    for t, p in random_cases(1500, seed=0):
        assert macro_f1(t, p) == sk_macro_f1(t, p), (t, p)


@pytest.mark.parametrize(
    ("t", "p"),
    [
        ([0, 0, 1, 1], [0, 0, 0, 0]),  # class 1 never predicted
        ([0, 0, 0, 0], [0, 1, 2, 0]),  # classes 1, 2 never true
        ([3, 3, 3], [3, 3, 3]),  # one class, perfect
        ([1], [0]),  # one sample, wrong
        ([0, 1], [1, 0]),  # binary, all wrong -> 0
        ([0, 2, 4, 6], [0, 2, 4, 6]),  # non-contiguous labels
    ],
)
def test_macro_f1_edge_cases(t: list[int], p: list[int]) -> None:
    assert macro_f1(np.array(t), np.array(p)) == sk_macro_f1(np.array(t), np.array(p))


def test_macro_f1_range_and_known_values() -> None:
    assert macro_f1([0, 1, 2], [0, 1, 2]) == 1.0
    assert macro_f1([0, 1], [1, 0]) == 0.0
    # class 0: P = 1, R = 0.5, F1 = 2/3; class 1: P = 0.5, R = 1, F1 = 2/3.
    assert macro_f1([0, 0, 1], [0, 1, 1]) == pytest.approx(2 / 3)


def test_batched_equals_scalar_row_by_row() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        n_labels = int(rng.choice([2, 4, 9, 20]))
        t = rng.integers(0, n_labels, n)
        rows = int(rng.integers(1, 15))
        p = rng.integers(0, n_labels + 2, (rows, n))
        p[0] = t  # rows with different label unions in the same batch
        p[-1] = p[-1, 0]
        got = macro_f1_batched(t, p)
        assert got.shape == (rows,)
        want = np.array([sk_macro_f1(t, row) for row in p])
        assert np.array_equal(got, want)
        assert np.array_equal(got, np.array([macro_f1(t, row) for row in p]))


def test_batched_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        macro_f1_batched([0, 1], [0, 1])
    with pytest.raises(ValueError):
        macro_f1_batched([0, 1], [[0, 1, 1]])
    with pytest.raises(ValueError):
        macro_f1([0, 1], [0])
    with pytest.raises(ValueError):
        macro_f1([], [])


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_confusion_matrix_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        k = int(rng.integers(1, 8))
        n = int(rng.integers(0, 50))
        t, p = rng.integers(0, k, n), rng.integers(0, k, n)
        cm = confusion_matrix(t, p, k)
        assert cm.dtype == np.int64 and cm.shape == (k, k)
        assert np.array_equal(cm, sk_confusion_matrix(t, p, labels=list(range(k))))
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)


def test_weighted_equals_macro_f1_of_the_repeated_samples() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(1, 40))
        t, p = rng.integers(0, k, n), rng.integers(0, k, (3, n))
        counts = rng.integers(0, 3, (4, n))
        counts[:, 0] += 1  # no empty draw
        got = weighted_macro_f1(t, p, counts, k)
        assert got.shape == (4, 3)
        for b in range(4):
            drawn = np.repeat(np.arange(n), counts[b])
            for s in range(3):
                assert got[b, s] == pytest.approx(macro_f1(t[drawn], p[s][drawn]), abs=1e-12)


def test_weighted_with_unit_weights_is_the_plain_score() -> None:
    t = np.array([0, 1, 2, 2, 1])
    p = np.array([[0, 2, 2, 2, 1], [1, 1, 1, 1, 1]])
    got = weighted_macro_f1(t, p, np.ones((1, 5)), n_classes=4)  # class 3 never occurs
    np.testing.assert_allclose(got[0], macro_f1_batched(t, p), rtol=0, atol=1e-15)
