"""L2 logistic regression, many problems at once: fitting by batched L-BFGS, the diagnostics of a
solution, and prediction.

Every training set and every C of a grid is one problem; they are fitted together in float64,
full batch, by `lbfgs.minimize_batched` on the objective of `logistic_loss` (scikit-learn's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ultrabench_eval.probes.lbfgs import minimize_batched
from ultrabench_eval.probes.logistic_loss import BatchedLogisticLoss

__all__ = [
    "BatchedLogisticFit",
    "balanced_sample_weight",
    "evaluate_logistic",
    "fit_logistic_batched",
    "fit_logistic_sets",
    "predict_batched",
]


@dataclass
class BatchedLogisticFit:
    """Solutions of G logistic regressions sharing data, in the standardised feature space."""

    coef: np.ndarray  # [G, P, D] (P = 1 for binary, K otherwise), like sklearn's coef_
    intercept: np.ndarray  # [G, P]
    iterations: np.ndarray  # int [G]
    converged: np.ndarray  # bool [G]
    grad_max: np.ndarray  # [G] max-abs gradient of the scaled objective at the solution
    objective: np.ndarray  # [G] scaled objective at the solution


def balanced_sample_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's `class_weight="balanced"` as per-sample weights.

    `y` holds compact labels `0..n_classes-1`, every class present; the weight of class k is
    `n_samples / (n_classes * count_k)`.
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (y.shape[0] / (n_classes * counts))[y]


def _row_space(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """With more features than samples, the coordinates of x in its row space, and the basis.

    The L2 optimum lies in the row space of the training features (every gradient does), and
    the penalty is the same in those coordinates, so the fit there is the same problem with
    N instead of D columns, mapped back through the basis afterwards.
    """
    n, d = x.shape
    if d <= n:
        return x, None
    _, sv, vh = torch.linalg.svd(x, full_matrices=False)
    keep = sv > sv[0] * max(n, d) * torch.finfo(x.dtype).eps
    basis = vh[keep]  # [r, D], orthonormal rows
    return x @ basis.T, basis


def fit_logistic_sets(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    Cs: Sequence[float],
    *,
    n_classes: int,
    sample_weights: Sequence[np.ndarray | None] | None = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
    history: int = 10,
    device: str | torch.device = "cpu",
) -> list[BatchedLogisticFit]:
    """Fit one L2 logistic regression per (training set, C), all at once, by batched L-BFGS.

    `xs[s]` [N_s, D] (already standardised), `ys[s]` compact labels in `[0, n_classes)` with
    every class present in each set. A problem stops when the max-abs gradient of its scaled
    objective is <= `tol` (its weights then stay fixed); the loop ends when every problem has
    stopped or after `max_iter` iterations. Deterministic: same input, same device -> same
    output, whatever else is in the batch.
    """
    dev = torch.device(device)
    if int(n_classes) < 2:
        raise ValueError("logistic regression needs at least 2 classes")
    weights = list(sample_weights) if sample_weights is not None else [None] * len(xs)
    dt = torch.float64
    reduced = [
        _row_space(torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dt, device=dev))
        for x in xs
    ]
    loss = BatchedLogisticLoss.from_sets([x for x, _ in reduced], ys, weights, Cs, n_classes)
    n_sets, n_c, d1, p = loss.s, loss.g, loss.d1, loss.p
    w0 = torch.zeros(n_sets * n_c, d1 * p, dtype=dt, device=dev)
    found = minimize_batched(loss, w0, tol=tol, max_iter=max_iter, history=history)

    fits = []
    w4 = found.w.view(n_sets, n_c, d1, p)
    for i, (xr, basis) in enumerate(reduced):
        d = xr.shape[1]
        coef = w4[i, :, :d, :].permute(0, 2, 1)  # [G, P, d]
        if basis is not None:
            coef = coef @ basis  # back to the D original features
        rows = slice(i * n_c, (i + 1) * n_c)
        fits.append(
            BatchedLogisticFit(
                coef=coef.cpu().numpy().copy(),
                intercept=w4[i, :, -1, :].cpu().numpy().copy(),
                iterations=found.iterations[rows].cpu().numpy(),
                converged=found.converged[rows].cpu().numpy(),
                grad_max=found.g[rows].abs().amax(dim=1).cpu().numpy(),
                objective=found.f[rows].cpu().numpy(),
            )
        )
    return fits


def fit_logistic_batched(
    x: np.ndarray,
    y: np.ndarray,
    Cs: Sequence[float],
    *,
    n_classes: int,
    sample_weight: np.ndarray | None = None,
    **options: Any,
) -> BatchedLogisticFit:
    """`fit_logistic_sets` for one training set."""
    return fit_logistic_sets(
        [x], [y], Cs, n_classes=n_classes, sample_weights=[sample_weight], **options
    )[0]


def evaluate_logistic(
    x: np.ndarray,
    y: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    Cs: Sequence[float],
    *,
    n_classes: int,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The scaled objective [G] and the max-abs of its gradient [G] of G solutions found
    elsewhere (`coef` [G, P, D], `intercept` [G, P], one per C), on the CPU in float64."""
    loss = BatchedLogisticLoss.from_sets(
        [torch.as_tensor(np.asarray(x, dtype=np.float64))], [y], [sample_weight], Cs, n_classes
    )
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    # each problem's flat weights: coefficients transposed [D, P], then the intercept row
    w = np.concatenate([coef.transpose(0, 2, 1), intercept[:, None, :]], axis=1)
    value, grad = loss(torch.as_tensor(w.reshape(len(w), -1)), torch.arange(len(w)))
    return value.numpy(), grad.abs().amax(dim=1).numpy()


def predict_batched(x: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Compact class predictions [G, N] of G linear models (`coef` [G, P, D], `intercept` [G, P]).

    Binary (P = 1): class 1 iff the logit is > 0, as scikit-learn; otherwise the first argmax.
    """
    n_problems, p, d = coef.shape
    flat = np.asarray(x, dtype=np.float64) @ coef.reshape(n_problems * p, d).T  # [N, G*P]
    z = flat.reshape(-1, n_problems, p).transpose(1, 0, 2) + intercept[:, None, :]
    if p == 1:
        return (z[:, :, 0] > 0).astype(np.int64)
    return z.argmax(axis=2).astype(np.int64)
