import numpy as np
import pytest
import torch

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
    assert KNNProbe(ks=[5, 1, 5]).ks == (1, 5)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ks": (0,)}, ValueError, "ks[0] must be at least 1, got 0"),
        ({"ks": []}, ValueError, "ks must have at least 1 item"),
        ({"ks": ["five"]}, TypeError, "ks[0] must be a whole number, got 'five'"),
        ({"ks": [2.5]}, TypeError, "ks[0] must be a whole number, got 2.5"),
        ({"k": 5}, TypeError, "unknown field(s) k (known: ks, device)"),
        ({"device": 0}, TypeError, "device must be text"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options, error, message):
    with pytest.raises(error) as caught:
        KNNProbe(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_cpu_device_is_kept_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert KNNProbe().device == torch.device("cuda")  # auto
    probe = KNNProbe(ks=(1,), device="cpu")
    assert probe.device == torch.device("cpu")
    x, y = np.eye(2), np.array([0, 1])
    assert list(probe.fit_predict(x, y, x, y, x, y, n_classes=2).test_pred) == [0, 1]
