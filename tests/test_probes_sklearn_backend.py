"""The scikit-learn reference backend of the linear probe."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from ultrabench_eval.probes.logistic import balanced_sample_weight, evaluate_logistic
from ultrabench_eval.probes.sklearn_backend import fit_sklearn


def test_one_logistic_regression_per_C_with_its_diagnostics() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(3, size=90, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=(90, 4)) + np.eye(3, 4)[y]
    Cs = [0.1, 10.0]
    w = balanced_sample_weight(y, 3)
    fit = fit_sklearn(
        x, y, Cs, n_classes=3, sample_weight=w, class_weight="balanced", max_iter=5000, tol=1e-8
    )
    assert fit.coef.shape == (2, 3, 4) and fit.intercept.shape == (2, 3)
    ref = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000, tol=1e-8).fit(x, y)
    np.testing.assert_array_equal(fit.coef[1], ref.coef_)
    assert fit.converged.all() and (fit.iterations > 0).all()
    objective, grad_max = evaluate_logistic(
        x, y, fit.coef, fit.intercept, Cs, n_classes=3, sample_weight=w
    )
    np.testing.assert_array_equal(fit.objective, objective)
    np.testing.assert_array_equal(fit.grad_max, grad_max)


def test_hitting_the_iteration_limit_is_not_convergence() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    x = rng.normal(size=(60, 5)) + y[:, None]
    fit = fit_sklearn(
        x, y, [100.0], n_classes=2, sample_weight=None, class_weight=None, max_iter=1, tol=1e-12
    )
    assert not fit.converged[0]
