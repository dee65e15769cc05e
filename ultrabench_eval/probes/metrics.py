"""Classification metrics, computed exactly as scikit-learn computes them.

`macro_f1` must reproduce `sklearn.metrics.f1_score(average="macro", zero_division=0)` bit for bit,
so leaderboards computed here and with scikit-learn never disagree in the last digit. That means
the same label set (the union of labels present in truth and prediction), the same per-class
formula (F1 = 2 tp / (2 tp + fp + fn), 0 where undefined) and the same reduction (numpy's
pairwise `sum` over the per-class scores in sorted-label order, divided by their count).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["confusion_matrix", "macro_f1", "macro_f1_batched", "weighted_macro_f1"]


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Counts `[n_classes, n_classes]` (int64): row = true class, column = predicted class.

    Labels must be integers in `[0, n_classes)`.
    """
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64, copy=False)


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Macro-averaged F1 in [0, 1], equal to scikit-learn's
    `f1_score(y_true, y_pred, average="macro", zero_division=0)`.

    Averages over the union of labels present in `y_true` and `y_pred`: a class absent from both
    does not count, a class only predicted (or only true) counts with F1 = 0.
    """
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    return float(macro_f1_batched(t, p[None, :])[0])


def macro_f1_batched(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Macro-F1 of each row of `y_pred` `[G, N]` against `y_true` `[N]`: float64 `[G]`.

    Row `g` equals `macro_f1(y_true, y_pred[g])` exactly (each row uses its own label union).
    """
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred)
    if p.ndim != 2:
        raise ValueError(f"y_pred must be 2-D [G, N], got shape {p.shape}")
    n_rows, n = p.shape
    if t.shape[0] != n:
        raise ValueError(f"y_true has {t.shape[0]} labels but y_pred rows have {n}")
    if n == 0:
        raise ValueError("macro_f1 needs at least one sample")
    if n_rows == 0:
        return np.zeros(0, dtype=np.float64)

    # Encode every label (of truth and of all rows) once, to 0..L-1 in sorted order.
    labels, codes = np.unique(np.concatenate([t, p.ravel()]), return_inverse=True)
    n_labels = labels.shape[0]
    codes = codes.reshape(-1).astype(np.int64)
    t_code = codes[:n]
    p_code = codes[n:].reshape(n_rows, n)

    # One bincount per statistic for all rows at once: bin = row * L + label.
    row_offset = (np.arange(n_rows, dtype=np.int64) * n_labels)[:, None]
    size = n_rows * n_labels
    pred_sum = np.bincount((p_code + row_offset).ravel(), minlength=size)
    hit = p_code == t_code[None, :]
    tp_sum = np.bincount((p_code + row_offset)[hit], minlength=size)
    true_sum = np.tile(np.bincount(t_code, minlength=n_labels), n_rows)
    pred_sum = pred_sum.reshape(n_rows, n_labels)
    tp_sum = tp_sum.reshape(n_rows, n_labels)
    true_sum = true_sum.reshape(n_rows, n_labels)

    f, present = _per_class_f1(tp_sum, true_sum, pred_sum)

    # Mean over each row's present labels. numpy's pairwise summation groups terms by
    # position, so padding with zeros could change the rounding: rows are grouped by their
    # number of present labels and summed as packed [rows, m] arrays, exactly like sklearn's
    # nanmean over a length-m vector.
    counts = present.sum(axis=1)
    out = np.empty(n_rows, dtype=np.float64)
    # Stable sort moves present labels first while keeping their sorted-label order.
    order = np.argsort(~present, axis=1, kind="stable")
    packed = np.take_along_axis(f, order, axis=1)
    for m in np.unique(counts):
        rows = np.flatnonzero(counts == m)
        block = np.ascontiguousarray(packed[rows, :m])
        out[rows] = block.sum(axis=1) / m
    return out


def weighted_macro_f1(
    y_true: ArrayLike, y_pred: ArrayLike, counts: ArrayLike, n_classes: int
) -> np.ndarray:
    """Macro-F1 of predictions `y_pred` [S, N] on each weighted test set `counts` [B, N] (how
    often each image is drawn, for the bootstrap): float [B, S]. Classes absent from both truth
    and prediction of a draw do not count, as in scikit-learn's macro average."""
    y_true = np.asarray(y_true)
    y_pred = np.atleast_2d(np.asarray(y_pred))
    counts = np.asarray(counts, dtype=np.float64)
    eye = np.eye(n_classes)
    true_hot = eye[y_true]  # [N, K]
    pred_hot = eye[y_pred]  # [S, N, K]
    hit = pred_hot * true_hot[None]  # [S, N, K]
    true_sum = counts @ true_hot  # [B, K]
    pred_sum = np.einsum("bn,snk->bsk", counts, pred_hot)
    tp = np.einsum("bn,snk->bsk", counts, hit)
    f1, present = _per_class_f1(tp, true_sum[:, None, :], pred_sum)
    return f1.sum(axis=2) / np.maximum(present.sum(axis=2), 1)


def _per_class_f1(
    tp: np.ndarray, true_sum: np.ndarray, pred_sum: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 from the (broadcastable) counts, and which classes count.

    scikit-learn's f = (1 + beta^2) tp / (beta^2 true + pred) with beta = 1, in float64, 0 where
    the denominator is 0 (a label that is neither true nor predicted never enters the mean).
    """
    denom = true_sum.astype(np.float64) + pred_sum.astype(np.float64)
    present = denom > 0
    f = np.zeros(denom.shape, dtype=np.float64)
    np.divide(2.0 * tp.astype(np.float64), denom, out=f, where=present)
    return f, present


def _as_labels(y: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(y).ravel()
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)
