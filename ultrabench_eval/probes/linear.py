"""The `linear` probe: multinomial L2 logistic regression over a grid of C, chosen on validation.

The model and its objective are scikit-learn's `LogisticRegression` (lbfgs, L2, unpenalised
intercept; see `logistic_loss`). The torch backend fits the whole C grid, and every training
subset, at once by batched L-BFGS (`logistic.fit_logistic_sets`); the scikit-learn backend
(`sklearn_backend`) fits one `LogisticRegression` per C and is the reference.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, MinLen

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.probes.base import BatchedProbe, ProbeResult
from ultrabench_eval.probes.logistic import (
    BatchedLogisticFit,
    balanced_sample_weight,
    fit_logistic_sets,
    predict_batched,
)
from ultrabench_eval.probes.metrics import macro_f1, macro_f1_batched
from ultrabench_eval.probes.options import FORBID_UNKNOWN, DeviceOption, Positive, parse_options
from ultrabench_eval.probes.sklearn_backend import fit_sklearn
from ultrabench_eval.probes.standardise import standardise

__all__ = ["DEFAULT_CS", "LinearOptions", "LinearProbe", "select_C"]

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 13))


@dataclass(frozen=True)
class LinearOptions:
    """The options of the `linear` probe (see `LinearProbe`)."""

    __pydantic_config__ = FORBID_UNKNOWN

    Cs: Annotated[list[Positive], MinLen(1)] | None = None  # None: DEFAULT_CS
    backend: Literal["torch", "sklearn"] = "torch"
    class_weight: Literal["balanced"] | None = None
    max_iter: Annotated[int, Ge(1)] = 1000
    tol: Positive = 1e-6  # both backends; why not scikit-learn's 1e-4: the README, "Probes"
    device: DeviceOption = AUTO  # of the torch backend


# Scores closer than this count as a tie (identical predictions give identical scores; this only
# absorbs last-bit differences between mathematically equal F1 values).
_TIE_EPS = 1e-12


def select_C(Cs: Sequence[float], val_scores: np.ndarray) -> int:
    """Index of the best validation score; ties go to the SMALLER C (stronger regularisation)."""
    cs = np.asarray(Cs, dtype=np.float64)
    scores = np.asarray(val_scores, dtype=np.float64)
    best = scores.max()
    tied = np.flatnonzero(scores >= best - _TIE_EPS)
    return int(tied[np.argmin(cs[tied])])


def _labels(y: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y).astype(np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, {n_classes})")
    return y


class _Subset:
    """One training set, standardised with its own statistics, labels made compact (fit on
    the classes present only: an absent class would drive its intercept to -inf)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, _, self.mean, self.std = standardise(x)
        self.classes = np.unique(y)
        self.compact = np.searchsorted(self.classes, y)

    def predict(self, x: np.ndarray, fit: BatchedLogisticFit) -> np.ndarray:
        """Compact predictions [G, N] for raw features x, standardised as this set was."""
        scaled = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return predict_batched(scaled, fit.coef, fit.intercept)


class LinearProbe(BatchedProbe):
    """L2 logistic regression on train-standardised features, C chosen on validation macro-F1.

    Options (`LinearOptions`): `Cs` (grid, default `np.logspace(-4, 2, 13)`), `backend`
    ("torch": batched L-BFGS fitting the whole grid at once; "sklearn": one `LogisticRegression`
    per C, the reference), `class_weight` (None | "balanced"), `max_iter`, `tol` (max-abs
    gradient of scikit-learn's scaled objective), `device` (of the torch backend: "auto", the
    GPU when there is one, "cpu", "cuda" or "cuda:N").

    The fit is convex and deterministic: `seed` does not change it. Seeds act upstream, on the
    few-shot subsample of the training set.

    Classes absent from the training set are never predicted (as with scikit-learn, the model
    knows only the classes it saw); a training set with one class predicts that class.
    """

    name = "linear"
    uses_seed = False  # convex and deterministic: a seed changes nothing in the fit

    def __init__(self, **options: Any) -> None:
        chosen = parse_options(LinearOptions, options)
        # Sorted ascending so ties are easy to read; selection breaks ties by value anyway.
        grid = np.asarray(DEFAULT_CS if chosen.Cs is None else chosen.Cs, dtype=np.float64)
        self.Cs = [float(c) for c in np.unique(grid)]
        self.backend = chosen.backend
        self.class_weight = chosen.class_weight
        self.max_iter = chosen.max_iter
        self.tol = chosen.tol
        self.device = resolve_device(chosen.device)
        self.last_fit: BatchedLogisticFit | None = None  # diagnostics of the last call

    def fit_predict_subsets(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        subsets: Sequence[np.ndarray],
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seeds: Sequence[int],
    ) -> list[ProbeResult]:
        """One probe per training subset, every subset and every C fitted in one batch.

        Each subset is standardised with its own statistics and keeps only its own classes.
        """
        start = time.perf_counter()
        train_x = np.asarray(train_x)
        train_y = _labels(train_y, n_classes, "train_y")
        val_y = _labels(val_y, n_classes, "val_y")
        test_y = _labels(test_y, n_classes, "test_y")
        if val_y.size == 0 or any(len(idx) == 0 for idx in subsets):
            raise ValueError("the linear probe needs non-empty train and validation sets")
        if len(seeds) != len(subsets):
            raise ValueError("one seed per subset")
        prepared = [_Subset(train_x[idx], train_y[idx]) for idx in subsets]
        fits = self._fit_all(prepared)
        out = []
        for prep, fit in zip(prepared, fits, strict=True):
            out.append(self._score(prep, fit, val_x, val_y, test_x, test_y))
        seconds = (time.perf_counter() - start) / len(subsets)
        for result in out:
            result.seconds = seconds
        self.last_fit = fits[-1]
        return out

    def _fit_all(self, prepared: list[_Subset]) -> list[BatchedLogisticFit | None]:
        """Fits per subset; subsets with the same classes share one batched solve."""
        fits: list[BatchedLogisticFit | None] = [None] * len(prepared)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, prep in enumerate(prepared):
            if prep.classes.shape[0] >= 2:
                groups.setdefault(tuple(prep.classes.tolist()), []).append(i)
        for members in groups.values():
            n_fit = prepared[members[0]].classes.shape[0]
            weights = [
                balanced_sample_weight(prepared[i].compact, n_fit) if self.class_weight else None
                for i in members
            ]
            if self.backend == "torch":
                solved = fit_logistic_sets(
                    [prepared[i].x for i in members],
                    [prepared[i].compact for i in members],
                    self.Cs,
                    n_classes=n_fit,
                    sample_weights=weights,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    device=self.device,
                )
            else:
                solved = [
                    fit_sklearn(
                        prepared[i].x,
                        prepared[i].compact,
                        self.Cs,
                        n_classes=n_fit,
                        sample_weight=w,
                        class_weight=self.class_weight,
                        max_iter=self.max_iter,
                        tol=self.tol,
                    )
                    for i, w in zip(members, weights, strict=True)
                ]
            for i, fit in zip(members, solved, strict=True):
                fits[i] = fit
        return fits

    def _score(
        self,
        prep: _Subset,
        fit: BatchedLogisticFit | None,
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
    ) -> ProbeResult:
        n_c = len(self.Cs)
        if fit is None:  # one class in training: predict it everywhere
            val_pred_all = np.full((n_c, val_y.shape[0]), prep.classes[0], dtype=np.int64)
            test_pred_all = np.full((n_c, test_y.shape[0]), prep.classes[0], dtype=np.int64)
        else:
            val_pred_all = prep.classes[prep.predict(val_x, fit)]
            test_pred_all = prep.classes[prep.predict(test_x, fit)]
        # Selection sees validation only.
        val_scores = macro_f1_batched(val_y, val_pred_all)
        best = select_C(self.Cs, val_scores)
        test_pred = test_pred_all[best]
        params: dict[str, Any] = {
            "C": self.Cs[best],
            "C_grid": list(self.Cs),
            "val_macro_f1_per_C": [float(100.0 * s) for s in val_scores],
            "iterations": [int(i) for i in fit.iterations] if fit else [0] * n_c,
            "converged": [bool(c) for c in fit.converged] if fit else [True] * n_c,
            "grad_max": [float(v) for v in fit.grad_max] if fit else [0.0] * n_c,
            "objective": [float(v) for v in fit.objective] if fit else [0.0] * n_c,
            "backend": self.backend,
            "device": str(self.device) if self.backend == "torch" else "cpu",
            "class_weight": self.class_weight,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "classes_fitted": [int(c) for c in prep.classes],
            "train_size": int(prep.compact.shape[0]),
        }
        return ProbeResult(
            test_pred=test_pred.astype(np.int64),
            val_pred=val_pred_all[best].astype(np.int64),
            test_macro_f1=100.0 * macro_f1(test_y, test_pred) if test_y.size else float("nan"),
            val_macro_f1=100.0 * float(val_scores[best]),
            params=params,
        )
