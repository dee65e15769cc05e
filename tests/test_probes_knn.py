import numpy as np
import pytest

from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes import KNNProbe


def test_nearest_neighbour_votes_and_k_choice():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    y = rng.integers(0, 3, 90)
    x = centres[y] + rng.normal(size=(90, 3))
    result = KNNProbe(ks=(1, 5, 15)).fit_predict(
        x[:50], y[:50], x[50:70], y[50:70], x[70:], y[70:], n_classes=3
    )
    assert result.test_macro_f1 > 95
    assert result.params["k"] in (1, 5, 15) and result.params["k_grid"] == [1, 5, 15]
    # all ks tie at 100 on validation: the smallest wins
    assert result.params["k"] == 1


def test_cosine_not_euclidean():
    # same direction, different length: cosine calls them the same
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 1])
    queries = np.array([[10.0, 0.5], [0.1, 3.0]])
    out = KNNProbe(ks=(1,)).fit_predict(
        train, labels, queries, np.array([0, 1]), queries, np.array([0, 1]), n_classes=2
    )
    assert list(out.test_pred) == [0, 1]


def test_majority_then_similarity_breaks_ties():
    train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.2, 1.0]])
    labels = np.array([0, 0, 1, 1])
    query = np.array([[1.0, 0.05]])
    out = KNNProbe(ks=(4,)).fit_predict(
        train, labels, query, np.array([0]), query, np.array([0]), n_classes=2
    )
    assert out.test_pred[0] == 0  # 2 votes each; class 0 is nearer


def test_registered_presets():
    for name in ("us-jepa-2026", "linear", "lbfgs", "knn", "mlp"):
        assert name in PROBES
    with pytest.raises(ValueError):
        KNNProbe(ks=(0,))
