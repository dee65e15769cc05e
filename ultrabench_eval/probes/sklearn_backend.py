"""The reference backend of the `linear` probe: one scikit-learn `LogisticRegression` per C."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ultrabench_eval.probes.logistic import BatchedLogisticFit, evaluate_logistic

__all__ = ["fit_sklearn"]


def fit_sklearn(
    x: np.ndarray,
    y: np.ndarray,
    Cs: Sequence[float],
    *,
    n_classes: int,
    sample_weight: np.ndarray | None,
    class_weight: str | None,
    max_iter: int,
    tol: float,
) -> BatchedLogisticFit:
    """Fit one `LogisticRegression` per C on the same (standardised) features and compact labels
    as the torch backend, with the same tolerance; `sample_weight` are our balanced weights (or
    None), used for the diagnostics only: scikit-learn computes its own from `class_weight`, so
    the reference checks ours."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    coefs, intercepts, iterations, converged = [], [], [], []
    for c in Cs:
        model = LogisticRegression(C=c, max_iter=max_iter, tol=tol, class_weight=class_weight)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, y)
        hit_limit = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        coefs.append(model.coef_.astype(np.float64))
        intercepts.append(model.intercept_.astype(np.float64))
        iterations.append(int(np.max(model.n_iter_)))
        converged.append(not hit_limit)
    coef, intercept = np.stack(coefs), np.stack(intercepts)
    objective, grad_max = evaluate_logistic(
        x, y, coef, intercept, Cs, n_classes=n_classes, sample_weight=sample_weight
    )
    return BatchedLogisticFit(
        coef=coef,
        intercept=intercept,
        iterations=np.asarray(iterations),
        converged=np.asarray(converged),
        grad_max=grad_max,
        objective=objective,
    )
