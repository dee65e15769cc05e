"""Segmentation metrics: per-image confusion counts, and Dice and IoU aggregated over a test set.

A score is dataset-level, as nnU-Net and mmsegmentation aggregate it: each class's true
positives, false positives and false negatives are summed over the test images first, and the
per-class Dice (2 tp / (2 tp + fp + fn)) and IoU (tp / (tp + fp + fn)) come from the sums. A
class whose denominator is 0 (absent from both truth and prediction everywhere) has no score
(NaN) and is left out of the means, as mmsegmentation's `nanmean` leaves it out.

- `dice`: mean Dice over the foreground classes 1..K-1 (class 0 is the background), x100;
- `miou`: mean IoU over every class, background included (mmsegmentation's mIoU), x100.

Only pixels marked valid (inside the ultrasound scan) count. Per-image counts are kept so that a
bootstrap can resample images: `segmentation_scores` takes per-image weights (how often each
image is drawn, [draws, N]) and scores every draw at once, as `results.stats` does for macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "SegmentationScores",
    "confusion_counts",
    "dice_per_class",
    "iou_per_class",
    "scores_of_totals",
    "segmentation_scores",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

TP, FP, FN = 0, 1, 2  # the last axis of a counts array
_PIXELS_PER_PIECE = 1 << 24  # numpy inputs are counted this many pixels at a time


def confusion_counts(
    pred: Array, target: Array, valid: Array, n_classes: int, *, check: bool = True
) -> Array:
    """Per image and class, the true positives, false positives and false negatives over the
    valid pixels: int64 [N, K, 3] (tp, fp, fn).

    `pred` and `target` [N, H, W] hold class indices, `valid` [N, H, W] is boolean (or 0/1).
    numpy arrays give a numpy array; torch tensors a tensor on their device (one `bincount` for
    the whole batch). Class indices must lie in [0, n_classes) where valid (`check=False` skips
    that test, for callers that know it holds); invalid pixels are never read.
    """
    if isinstance(pred, torch.Tensor):
        return _torch_counts(pred, target, valid, n_classes, check)
    if np.ndim(pred) != 3 or len({np.shape(a) for a in (pred, target, valid)}) > 1:
        return _torch_counts(*map(_host_tensor, (pred, target, valid)), n_classes, check)
    # a few images at a time: the int64 intermediates take 8 bytes a pixel
    n, height, width = np.shape(pred)
    step = max(1, _PIXELS_PER_PIECE // max(1, height * width))
    pieces = [
        _torch_counts(
            *(_host_tensor(a[start : start + step]) for a in (pred, target, valid)),
            n_classes,
            check,
        )
        for start in range(0, n, step)
    ]
    if not pieces:
        return np.zeros((0, n_classes, 3), dtype=np.int64)
    return torch.cat(pieces).numpy()


def _host_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing `array`'s memory where torch can (a read-only map is copied: torch
    does not take read-only memory); unsigned types torch lacks become int64."""
    array = np.asarray(array)
    if array.dtype.kind == "u" and array.dtype != np.uint8:
        array = array.astype(np.int64)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return torch.from_numpy(array)


def _torch_counts(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, n_classes: int, check: bool
) -> torch.Tensor:
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if pred.ndim != 3 or pred.shape != target.shape or pred.shape != valid.shape:
        raise ValueError(
            "pred, target and valid must share one shape [N, H, W], got "
            f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(valid.shape)}"
        )
    for name, labels in (("pred", pred), ("target", target)):
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices, got {labels.dtype}")
    n, k = pred.shape[0], n_classes
    valid = valid.bool()
    pred, target = pred.long(), target.long()
    if check and bool(
        ((pred < 0) | (pred >= k) | (target < 0) | (target >= k)).logical_and_(valid).any()
    ):
        raise ValueError(f"class indices must lie in [0, {n_classes}) inside the valid pixels")
    # one bin per (image, true class, predicted class); invalid pixels go to one extra bin
    image = torch.arange(n, device=pred.device).view(n, 1, 1)
    bins = (image * k + target) * k + pred
    bins = torch.where(valid, bins, n * k * k)
    confusion = torch.bincount(bins.flatten(), minlength=n * k * k + 1)[:-1].view(n, k, k)
    tp = confusion.diagonal(dim1=1, dim2=2)
    fp = confusion.sum(dim=1) - tp  # predicted as the class, true class another
    fn = confusion.sum(dim=2) - tp
    return torch.stack([tp, fp, fn], dim=2)


def dice_per_class(counts: Array) -> Array:
    """2 tp / (2 tp + fp + fn) per class from counts [..., K, 3] summed over images: float64
    [..., K], NaN where the denominator is 0. In [0, 1]."""
    tp, fp, fn = _split(counts)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou_per_class(counts: Array) -> Array:
    """tp / (tp + fp + fn) per class from counts [..., K, 3]: float64 [..., K], NaN where the
    denominator is 0. In [0, 1]."""
    tp, fp, fn = _split(counts)
    return _ratio(tp, tp + fp + fn)


def _split(counts):
    if counts.shape[-1] != 3:
        raise ValueError(f"counts must end in an axis of 3 (tp, fp, fn), got {counts.shape}")
    if isinstance(counts, torch.Tensor):
        counts = counts.double()
    else:
        counts = np.asarray(counts, dtype=np.float64)
    return counts[..., TP], counts[..., FP], counts[..., FN]


def _ratio(numerator, denominator):
    if isinstance(numerator, torch.Tensor):
        return torch.where(denominator > 0, numerator / denominator, torch.nan)  # 0/0: no warning
    out = np.full(np.shape(denominator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@dataclass(frozen=True)
class SegmentationScores:
    """Dataset-level scores, x100. Without weights the means are floats and the per-class
    scores [K - 1] (Dice, foreground) and [K] (IoU); with weights [draws, N] every field gains
    a leading axis of draws."""

    dice: float | np.ndarray  # mean Dice over the foreground classes that have one
    miou: float | np.ndarray  # mean IoU over every class that has one, background included
    dice_per_class: np.ndarray  # classes 1..K-1
    iou_per_class: np.ndarray  # classes 0..K-1


def segmentation_scores(
    counts: np.ndarray, weights: np.ndarray | None = None
) -> SegmentationScores:
    """Scores of per-image counts [N, K, 3] (K >= 2), summed over the images; with `weights`
    [draws, N] (bootstrap multinomial counts, or any non-negative weights) the counts are summed
    with each draw's weights, and every draw is scored at once."""
    if isinstance(counts, torch.Tensor):
        counts = counts.cpu().numpy()
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[2] != 3 or counts.shape[1] < 2:
        raise ValueError(f"counts must be [N, K, 3] with K >= 2, got {counts.shape}")
    if weights is None:
        summed = counts.sum(axis=0, dtype=np.float64)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != counts.shape[0]:
            raise ValueError(
                f"weights must be [draws, {counts.shape[0]}] (one per image), got {weights.shape}"
            )
        summed = np.einsum("bn,nkc->bkc", weights, counts.astype(np.float64))
    scores = scores_of_totals(summed)
    if weights is None:
        return SegmentationScores(
            float(scores.dice), float(scores.miou), scores.dice_per_class, scores.iou_per_class
        )
    return scores


def scores_of_totals(totals: np.ndarray) -> SegmentationScores:
    """Scores of counts already summed over the images, [..., K, 3] (K >= 2): every field has
    the leading axes of `totals` (0-d arrays for [K, 3])."""
    totals = np.asarray(totals, dtype=np.float64)
    if totals.ndim < 2 or totals.shape[-1] != 3 or totals.shape[-2] < 2:
        raise ValueError(f"totals must be [..., K, 3] with K >= 2, got {totals.shape}")
    dice = 100.0 * dice_per_class(totals)
    iou = 100.0 * iou_per_class(totals)
    foreground = dice[..., 1:]
    return SegmentationScores(_nanmean(foreground), _nanmean(iou), foreground, iou)


def _nanmean(scores: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the scores that are not NaN; NaN when none is (no warning)."""
    present = ~np.isnan(scores)
    count = present.sum(axis=-1)
    total = np.where(present, scores, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(np.shape(count), np.nan), where=count > 0)
