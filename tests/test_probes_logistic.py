"""Batched logistic regression: fits, the diagnostics of any solution, predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ultrabench_eval.probes.logistic import (
    balanced_sample_weight,
    evaluate_logistic,
    fit_logistic_batched,
    predict_batched,
)
from ultrabench_eval.probes.standardise import standardise


def data(k: int, n: int = 120, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    x = rng.normal(size=(n, d)) + 1.5 * np.eye(k, d)[y]
    return standardise(x)[0], y


@pytest.mark.parametrize("k", [2, 3])
def test_a_fit_reports_the_objective_and_gradient_of_its_solution(k: int) -> None:
    x, y = data(k)
    w = balanced_sample_weight(y, k)
    fit = fit_logistic_batched(x, y, [0.01, 1.0], n_classes=k, sample_weight=w, tol=1e-10)
    objective, grad_max = evaluate_logistic(
        x, y, fit.coef, fit.intercept, [0.01, 1.0], n_classes=k, sample_weight=w
    )
    np.testing.assert_allclose(objective, fit.objective, rtol=1e-12)
    assert fit.converged.all() and np.all(grad_max <= 1e-10)


def test_diagnostics_of_scikit_learn_solutions() -> None:
    x, y = data(3)
    model = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, y)
    objective, grad_max = evaluate_logistic(
        x, y, model.coef_[None], model.intercept_[None], [0.5], n_classes=3
    )
    ours = fit_logistic_batched(x, y, [0.5], n_classes=3, tol=1e-10)
    assert objective[0] == pytest.approx(ours.objective[0], rel=1e-9)
    assert grad_max[0] < 1e-6
    # away from the optimum the gradient is not small
    _, far = evaluate_logistic(
        x, y, 0 * model.coef_[None], model.intercept_[None], [0.5], n_classes=3
    )
    assert far[0] > 1e-3


def test_balanced_weights_even_out_the_classes() -> None:
    y = np.array([0, 0, 0, 1])
    w = balanced_sample_weight(y, 2)
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0])
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())


def test_predictions_binary_by_sign_multiclass_by_argmax() -> None:
    x = np.array([[1.0], [-1.0]])
    binary = predict_batched(x, np.array([[[2.0]]]), np.array([[0.0]]))
    assert binary.tolist() == [[1, 0]]
    multi = predict_batched(x, np.array([[[1.0], [-1.0], [0.0]]]), np.array([[0.0, 0.0, 0.5]]))
    assert multi.tolist() == [[0, 1]]
