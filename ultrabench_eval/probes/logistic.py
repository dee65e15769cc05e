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

from ultrabench_eval.probes.lbfgs import BatchedMinimum, minimize_batched
from ultrabench_eval.probes.logistic_loss import BatchedLogisticLoss
from ultrabench_eval.probes.logistic_precondition import PreconditionedLoss, spectral_basis

# Iterations the preconditioned copy of a problem runs alone before its plain twin joins (on
# real features nearly every problem converges well within it).
ALONE_ITERATIONS = 50

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
    precondition: bool = True,
) -> list[BatchedLogisticFit]:
    """Fit one L2 logistic regression per (training set, C), all at once, by batched L-BFGS.

    `xs[s]` [N_s, D] (already standardised), `ys[s]` compact labels in `[0, n_classes)` with
    every class present in each set. A problem stops when the max-abs gradient of its scaled
    objective (in the given features) is <= `tol` (its weights then stay fixed); the loop ends
    when every problem has stopped or after `max_iter` iterations. The solver works in the
    preconditioned variables of `logistic_precondition` (`precondition=False`: plain L-BFGS).
    Deterministic: same input, same device -> same output, whatever else is in the batch.
    """
    dev = torch.device(device)
    if int(n_classes) < 2:
        raise ValueError("logistic regression needs at least 2 classes")
    weights = list(sample_weights) if sample_weights is not None else [None] * len(xs)
    dt = torch.float64
    tensors = [torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dt, device=dev) for x in xs]
    n_c = len(Cs)
    if not precondition:
        loss = BatchedLogisticLoss.from_sets(tensors, ys, weights, Cs, n_classes)
        u0 = torch.zeros(loss.s * n_c, loss.d1 * loss.p, dtype=dt, device=dev)
        found = minimize_batched(loss, u0, tol=tol, max_iter=max_iter, history=history)
        return _fits(found.w, found, torch.arange(loss.s * n_c, device=dev), loss, n_c)
    loss = BatchedLogisticLoss.from_sets(tensors, ys, weights, list(Cs) * 2, n_classes)
    spectra = [spectral_basis(x) for x in tensors]
    pre = PreconditionedLoss(loss, spectra, n_classes, n_c)
    found, winners = _race(pre, n_c, tol=tol, max_iter=max_iter, history=history)
    w = pre.apply(found.w, torch.arange(loss.s * 2 * n_c, device=dev))
    return _fits(w, found, winners, loss, n_c)


def _race(
    pre: PreconditionedLoss, n_c: int, *, tol: float, max_iter: int, history: int
) -> tuple[BatchedMinimum, torch.Tensor]:
    """Solve each (set, C), preconditioned, then plainly too where that is slow; returns the
    solutions of every copy and, per (set, C), the row of the copy kept.

    Each (set, C) has two copies in `pre`: preconditioned (the first `n_c` of its set's rows)
    and plain. The preconditioner is what makes ill-conditioned (real) features fast; on
    nearly separable classes, where the data's curvature is not the covariance's, plain
    L-BFGS can be quicker. So the preconditioned copies run alone for `ALONE_ITERATIONS`; a
    problem still unsolved then is raced against its plain twin, started from the same point,
    and the first copy to converge wins: at most twice the work of the faster way from there.
    """
    loss = pre.loss
    n_all = loss.s * 2 * n_c
    dev = loss.x1.device
    everyone = torch.arange(n_all, device=dev)
    slot = everyone % (2 * n_c)
    twins = everyone - slot + (slot + n_c) % (2 * n_c)
    is_first = slot < n_c
    first = everyone[is_first]
    u0 = torch.zeros(n_all, loss.d1 * loss.p, dtype=loss.x1.dtype, device=dev)
    budget = min(max_iter, ALONE_ITERATIONS)
    found = minimize_batched(pre, u0, tol=tol, max_iter=budget, history=history, only=is_first)
    hard = first[~found.converged[first]]
    if hard.numel() and max_iter > budget:
        start = found.w.clone()
        start[twins[hard]] = pre.apply(found.w[hard], hard)  # the plain copy's variables are w
        racing = torch.zeros_like(is_first)
        racing[hard] = True
        racing[twins[hard]] = True
        raced = minimize_batched(
            pre,
            start,
            tol=tol,
            max_iter=max_iter - budget,
            history=history,
            twins=twins,
            only=racing,
        )
        rows = everyone[racing]
        found.w[rows], found.f[rows], found.g[rows] = raced.w[rows], raced.f[rows], raced.g[rows]
        found.size[rows], found.converged[rows] = raced.size[rows], raced.converged[rows]
        # iterations count from the start: a plain copy inherits its twin's first phase
        found.iterations[rows] = found.iterations[rows] + raced.iterations[rows]
        found.iterations[twins[hard]] += found.iterations[hard] - raced.iterations[hard]
    second = twins[first]
    # the converged copy; when neither converged, the one closer to converging
    take_second = ~found.converged[first] & (
        found.converged[second] | (found.size[second] < found.size[first])
    )
    return found, torch.where(take_second, second, first)


def _fits(
    w: torch.Tensor, found: BatchedMinimum, rows: torch.Tensor, loss: BatchedLogisticLoss, n_c: int
) -> list[BatchedLogisticFit]:
    """One fit per training set from the solutions `rows` (set-major, `n_c` per set)."""
    d1, p = loss.d1, loss.p
    d = d1 - 1
    w4 = w[rows].view(loss.s, n_c, d1, p)
    iterations = found.iterations[rows].view(loss.s, n_c).cpu().numpy()
    converged = found.converged[rows].view(loss.s, n_c).cpu().numpy()
    size = found.size[rows].view(loss.s, n_c).cpu().numpy()
    objective = found.f[rows].view(loss.s, n_c).cpu().numpy()
    fits = []
    for i in range(loss.s):
        fits.append(
            BatchedLogisticFit(
                coef=w4[i, :, :d, :].permute(0, 2, 1).cpu().numpy().copy(),
                intercept=w4[i, :, -1, :].cpu().numpy().copy(),
                iterations=iterations[i],
                converged=converged[i],
                grad_max=size[i],
                objective=objective[i],
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
