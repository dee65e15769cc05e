"""The `linear` probe: multinomial L2 logistic regression over a grid of C, chosen on validation.

The objective is scikit-learn's `LogisticRegression` (lbfgs, L2, unpenalised intercept):

    0.5 * ||W||^2 + C * sum_i w_i * CE(x_i, y_i)

minimised, as scikit-learn does, in the scaled form `mean_w(CE) + ||W||^2 / (2 C sum(w))`, so
that `tol` (max-abs gradient) means the same thing for both backends. With two classes the
model is binomial (one weight vector, logits `[0, z]`), exactly as scikit-learn fits it; with
K > 2 it is the symmetric multinomial with K weight vectors.

The torch backend fits the whole C grid at once: weights `[G, D+1, P]` in float64, full batch,
with a batched L-BFGS written here (per-problem history, step size, line search and convergence
mask). The scikit-learn backend fits one `LogisticRegression` per C and is the reference.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ultrabench_eval.probes.base import BatchedProbe, ProbeResult
from ultrabench_eval.probes.lbfgs import minimize_batched
from ultrabench_eval.probes.metrics import macro_f1, macro_f1_batched

__all__ = [
    "DEFAULT_CS",
    "BatchedLogisticFit",
    "LinearProbe",
    "balanced_sample_weight",
    "fit_logistic_batched",
    "logistic_objective",
    "predict_batched",
    "select_C",
    "standardise",
]

DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 13))

# Scores closer than this count as a tie (identical predictions give identical scores; this only
# absorbs last-bit differences between mathematically equal F1 values).
_TIE_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Shared pieces (both backends)
# --------------------------------------------------------------------------------------------


def standardise(
    train_x: np.ndarray, *others: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Z-score every array with the TRAIN mean and (population) std; zero-std columns keep std 1.

    Returns `(train_std, [others_std...], mean, std)`, all float64.
    """
    # torch, for its threads: numpy runs these passes over the (large) train matrix on one core.
    # torch.tensor copies, so the caller's arrays (perhaps read-only maps) are never touched.
    train = torch.tensor(np.asarray(train_x), dtype=torch.float64)
    mean = train.mean(dim=0)
    std = train.std(dim=0, correction=0)
    # A constant column carries no information; dividing by 1 keeps it finite (it becomes 0).
    std = torch.where(std > 0, std, torch.ones_like(std))

    def scale(x: torch.Tensor) -> np.ndarray:
        return x.sub_(mean).div_(std).numpy()

    scaled = [scale(torch.tensor(np.asarray(o), dtype=torch.float64)) for o in others]
    return scale(train), scaled, mean.numpy(), std.numpy()


def balanced_sample_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's `class_weight="balanced"` as per-sample weights.

    `y` holds compact labels `0..n_classes-1`, every class present; the weight of class k is
    `n_samples / (n_classes * count_k)`.
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (y.shape[0] / (n_classes * counts))[y]


def logistic_objective(
    x: np.ndarray,
    y: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    C: float,
    sample_weight: np.ndarray | None = None,
) -> float:
    """scikit-learn's scaled objective `sum_i w_i CE_i / sum(w) + ||coef||^2 / (2 C sum(w))`.

    `coef` is `[P, D]` and `intercept` `[P]` as in `LogisticRegression.coef_`/`intercept_`:
    P = 1 for two classes (logit of class 1), P = K otherwise. `y` holds compact labels.
    """
    x = np.asarray(x, dtype=np.float64)
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    z = x @ coef.T + np.asarray(intercept, dtype=np.float64)
    if coef.shape[0] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)
    zmax = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0]
    ce = lse - z[np.arange(z.shape[0]), y]
    w = np.ones(x.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    sw_sum = float(w.sum())
    return float((w @ ce) / sw_sum + 0.5 * float((coef * coef).sum()) / (C * sw_sum))


def select_C(Cs: Sequence[float], val_scores: np.ndarray) -> int:
    """Index of the best validation score; ties go to the SMALLER C (stronger regularisation)."""
    cs = np.asarray(Cs, dtype=np.float64)
    scores = np.asarray(val_scores, dtype=np.float64)
    best = scores.max()
    tied = np.flatnonzero(scores >= best - _TIE_EPS)
    return int(tied[np.argmin(cs[tied])])


# --------------------------------------------------------------------------------------------
# Batched L-BFGS (torch)
# --------------------------------------------------------------------------------------------


@dataclass
class BatchedLogisticFit:
    """Solutions of G logistic regressions sharing data, in the standardised feature space."""

    coef: np.ndarray  # [G, P, D] (P = 1 for binary, K otherwise), like sklearn's coef_
    intercept: np.ndarray  # [G, P]
    iterations: np.ndarray  # int [G]
    converged: np.ndarray  # bool [G]
    grad_max: np.ndarray  # [G] max-abs gradient of the scaled objective at the solution
    objective: np.ndarray  # [G] scaled objective at the solution


# Above this many values in one set's design matrix, its GEMMs are big enough that a Python loop
# over the sets costs nothing next to them, and it wastes no work on padding.
_PER_SET_GEMM_ABOVE = 1_000_000


class _BatchedLogisticLoss:
    """Scaled objective and gradient of S training sets x G values of C.

    Training set s has its own design matrix x1[s] [N, D+1] (zero-padded rows carry zero
    sample weight); its G problems share it through one batched GEMM each way.
    """

    def __init__(
        self, x1: torch.Tensor, y: torch.Tensor, sw: torch.Tensor, lam: torch.Tensor, k: int
    ):
        self.x1 = x1  # [S, N, D+1], last column = 1 (intercept)
        self.x1t = x1.transpose(1, 2).contiguous()
        self.sw = sw  # [S, N] sample weights / their sum per set
        self.s, self.n, self.d1 = x1.shape
        self.g = lam.shape[1]
        self.p = 1 if k == 2 else k
        self.y = y  # [S, N] int64 compact labels
        self.onehot = torch.nn.functional.one_hot(y, k).to(x1.dtype)  # [S, N, K]
        # Penalise the weights, not the intercept (the last row of each problem's [D+1, P]).
        penalised = torch.ones(self.d1, self.p, dtype=x1.dtype, device=x1.device)
        penalised[-1] = 0.0
        self.penalty = lam.reshape(self.s * self.g, 1, 1) * penalised  # [S*G, D+1, P]

    def __call__(self, w: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective [R] and gradient [R, (D+1)*P] of problems `rows` (indices s*G + c, sorted)
        at their flat weights `w` [R, (D+1)*P].

        Only the sets with a problem in `rows` enter the GEMMs, each with as many columns as
        the set with the most such problems (the others padded): problems that have converged
        cost nothing.
        """
        n, d1, g, p = self.n, self.d1, self.g, self.p
        sets = torch.div(rows, g, rounding_mode="floor")
        if n * d1 >= _PER_SET_GEMM_ABOVE:
            return self._per_set(w, rows, sets)
        used, per_set = torch.unique_consecutive(sets, return_counts=True)
        width = int(per_set.max())
        # slot of each row inside its set's block of `width` columns
        starts = torch.cumsum(per_set, 0) - per_set
        slot = torch.arange(len(rows), device=rows.device) - torch.repeat_interleave(
            starts, per_set
        )
        block = torch.repeat_interleave(torch.arange(len(used), device=rows.device), per_set)
        s = len(used)
        w3 = w.view(-1, d1, p)
        ws = w3.new_zeros(s, width, d1, p)
        ws[block, slot] = w3
        x1, x1t = self._design(used)
        z = torch.bmm(x1, ws.permute(0, 2, 1, 3).reshape(s, d1, width * p))
        z = z.view(s, n, width, p)
        if p == 1:  # binomial: class 0 is the reference with logit 0
            z = torch.cat([torch.zeros_like(z), z], dim=3)
        lse, probs = _log_softmax_parts(z, dim=3)  # [s, N, width], [s, N, width, K]
        y = self.y[used]
        z_true = z.gather(3, y.view(s, n, 1, 1).expand(-1, -1, width, 1)).squeeze(3)
        sw = self.sw[used]
        ce = torch.einsum("sn,snw->sw", sw, lse - z_true)[block, slot]
        reg = self.penalty[rows] * w3
        value = ce + 0.5 * (reg * w3).sum(dim=(1, 2))
        resid = probs.sub_(self.onehot[used].unsqueeze(2)).mul_(sw.view(s, n, 1, 1))
        if p == 1:
            resid = resid[..., 1:]
        grad = torch.bmm(x1t, resid.reshape(s, n, width * p)).view(s, d1, width, p)
        grad = grad.permute(0, 2, 1, 3)[block, slot]
        return value, (grad + reg).reshape(len(rows), d1 * p)

    def _per_set(
        self, w: torch.Tensor, rows: torch.Tensor, sets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One GEMM pair per set, over its live problems only: for large sets, where padding
        sets to a common width or copying design matrices would cost more than the loop."""
        n, d1, p = self.n, self.d1, self.p
        w3 = w.view(-1, d1, p)
        value = w.new_empty(len(rows))
        grad = w.new_empty(len(rows), d1, p)
        # `rows` is sorted, so each set's problems are one contiguous run: slices, not gathers
        used, counts = torch.unique_consecutive(sets, return_counts=True)
        start = 0
        for s, m in zip(used.tolist(), counts.tolist(), strict=True):
            run = slice(start, start + m)
            start += m
            ws = w3[run]
            z = (self.x1[s] @ ws.permute(1, 0, 2).reshape(d1, m * p)).view(n, m, p)
            if p == 1:
                z = torch.cat([torch.zeros_like(z), z], dim=2)
            lse, probs = _log_softmax_parts(z, dim=2)  # [N, m], [N, m, K]
            z_true = z.gather(2, self.y[s].view(n, 1, 1).expand(-1, m, 1)).squeeze(2)
            sw = self.sw[s]
            resid = probs.sub_(self.onehot[s].unsqueeze(1)).mul_(sw.view(n, 1, 1))
            if p == 1:
                resid = resid[..., 1:]
            reg = self.penalty[rows[run]] * ws
            value[run] = sw @ (lse - z_true) + 0.5 * (reg * ws).sum(dim=(1, 2))
            data = (self.x1t[s] @ resid.reshape(n, m * p)).view(d1, m, p).permute(1, 0, 2)
            torch.add(data, reg, out=grad[run])
        return value, grad.reshape(len(rows), d1 * p)

    def _design(self, used: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The design matrices of the sets `used` (views when every set is: no copy)."""
        if len(used) == self.s:
            return self.x1, self.x1t
        return self.x1.index_select(0, used), self.x1t.index_select(0, used)


def _log_softmax_parts(z: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp of z along `dim`, and the softmax: one exp pass for both."""
    top = z.amax(dim=dim, keepdim=True)
    e = (z - top).exp_()
    total = e.sum(dim=dim, keepdim=True)
    return (top + total.log()).squeeze(dim), e.div_(total)


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
    dt = torch.float64
    k = int(n_classes)
    if k < 2:
        raise ValueError("logistic regression needs at least 2 classes")
    weights = list(sample_weights) if sample_weights is not None else [None] * len(xs)
    reduced = [
        _row_space(torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dt, device=dev))
        for x in xs
    ]
    n_max = max(x.shape[0] for x, _ in reduced)
    d_max = max(x.shape[1] for x, _ in reduced)
    n_sets = len(reduced)
    # Pad every set to [n_max, d_max]: padded rows have zero weight, padded columns are zero
    # features whose weights only feel the penalty and so stay at zero.
    x1 = torch.zeros(n_sets, n_max, d_max + 1, dtype=dt, device=dev)
    y_pad = torch.zeros(n_sets, n_max, dtype=torch.long, device=dev)
    sw = torch.zeros(n_sets, n_max, dtype=dt, device=dev)
    sw_sums = []
    for i, ((xr, _), y, w) in enumerate(zip(reduced, ys, weights, strict=True)):
        n, d = xr.shape
        x1[i, :n, :d] = xr
        x1[i, :n, -1] = 1.0
        y_pad[i, :n] = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
        w_np = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
        sw_sums.append(float(w_np.sum()))
        sw[i, :n] = torch.as_tensor(w_np / w_np.sum(), dtype=dt, device=dev)
    cs = torch.as_tensor(np.asarray(Cs, dtype=np.float64), dtype=dt, device=dev)
    lam = 1.0 / (cs.view(1, -1) * torch.tensor(sw_sums, dtype=dt, device=dev).view(-1, 1))
    loss = _BatchedLogisticLoss(x1, y_pad, sw, lam, k)
    n_c = cs.shape[0]
    w0 = torch.zeros(n_sets * n_c, (d_max + 1) * loss.p, dtype=dt, device=dev)
    found = minimize_batched(loss, w0, tol=tol, max_iter=max_iter, history=history)

    fits = []
    w4 = found.w.view(n_sets, n_c, d_max + 1, loss.p)
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


# --------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------


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

    Options: `Cs` (grid, default `np.logspace(-4, 2, 13)`), `backend` ("torch": batched L-BFGS
    fitting the whole grid at once; "sklearn": one `LogisticRegression` per C, the reference),
    `class_weight` (None | "balanced"), `max_iter`, `tol` (max-abs gradient of scikit-learn's
    scaled objective), `device` ("cpu", "cuda", or None = cuda if available).

    The fit is convex and deterministic: `seed` does not change it. Seeds act upstream, on the
    few-shot subsample of the training set.

    Classes absent from the training set are never predicted (as with scikit-learn, the model
    knows only the classes it saw); a training set with one class predicts that class.
    """

    name = "linear"
    uses_seed = False  # convex and deterministic: a seed changes nothing in the fit

    def __init__(
        self,
        *,
        Cs: Sequence[float] | None = None,
        backend: str = "torch",
        class_weight: str | None = None,
        max_iter: int = 1000,
        tol: float = 1e-8,
        device: str | None = None,
    ):
        if backend not in ("torch", "sklearn"):
            raise ValueError(f"backend must be 'torch' or 'sklearn', got {backend!r}")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        grid = np.asarray(DEFAULT_CS if Cs is None else list(Cs), dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ValueError("Cs must be a non-empty list of positive numbers")
        # Sorted ascending so ties are easy to read; selection breaks ties by value anyway.
        self.Cs = [float(c) for c in np.unique(grid)]
        self.backend = backend
        self.class_weight = class_weight
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.device = device
        self.last_fit: BatchedLogisticFit | None = None  # diagnostics of the last call

    def _device(self) -> str:
        if self.device is not None:
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

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
                    device=self._device(),
                )
            else:
                solved = [
                    self._fit_sklearn(prepared[i].x, prepared[i].compact, w)
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
            "device": self._device() if self.backend == "torch" else "cpu",
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

    def _fit_sklearn(
        self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> BatchedLogisticFit:
        """Reference: one scikit-learn `LogisticRegression` per C, same features and weights."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        k = int(y.max()) + 1
        coefs, intercepts, iters, conv, objs, gmax = [], [], [], [], [], []
        for c in self.Cs:
            # scikit-learn computes its own balanced weights: the reference checks ours.
            model = LogisticRegression(
                C=c, max_iter=self.max_iter, tol=self.tol, class_weight=self.class_weight
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(x, y)
            hit_limit = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            coefs.append(model.coef_.astype(np.float64))
            intercepts.append(model.intercept_.astype(np.float64))
            iters.append(int(np.max(model.n_iter_)))
            conv.append(not hit_limit)
            objs.append(logistic_objective(x, y, model.coef_, model.intercept_, c, sample_weight))
            gmax.append(_grad_max(x, y, model.coef_, model.intercept_, c, sample_weight, k))
        return BatchedLogisticFit(
            coef=np.stack(coefs),
            intercept=np.stack(intercepts),
            iterations=np.asarray(iters),
            converged=np.asarray(conv),
            grad_max=np.asarray(gmax),
            objective=np.asarray(objs),
        )


def _grad_max(
    x: np.ndarray,
    y: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    C: float,
    sample_weight: np.ndarray | None,
    k: int,
) -> float:
    """Max-abs gradient of the scaled objective (diagnostic for the scikit-learn backend)."""
    z = x @ coef.T + intercept
    if coef.shape[0] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    w = np.ones(x.shape[0]) if sample_weight is None else sample_weight
    resid = (prob - np.eye(k)[y]) * (w / w.sum())[:, None]
    if coef.shape[0] == 1:
        resid = resid[:, 1:]
    g_coef = resid.T @ x + coef / (C * w.sum())
    g_int = resid.sum(axis=0)
    return float(max(np.abs(g_coef).max(), np.abs(g_int).max()))
