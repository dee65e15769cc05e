"""Segmentation metrics: confusion counts against a pixel loop, Dice and IoU against hand
computations and scikit-learn's per-class F1 and Jaccard over the pooled valid pixels."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score

from ultrabench_eval.probes import segmentation_metrics
from ultrabench_eval.probes.segmentation_metrics import (
    confusion_counts,
    dice_per_class,
    iou_per_class,
    scores_of_totals,
    segmentation_scores,
)
from ultrabench_eval.results.stats import resample_counts


def _random_case(seed=0, n=5, size=(6, 7), k=4):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, k, (n, *size))
    target = rng.integers(0, k, (n, *size))
    valid = rng.random((n, *size)) < 0.7
    return pred, target, valid


def _loop_counts(pred, target, valid, k):
    """The definition, one pixel at a time."""
    out = np.zeros((len(pred), k, 3), dtype=np.int64)
    for i in range(len(pred)):
        for p, t, v in zip(pred[i].ravel(), target[i].ravel(), valid[i].ravel(), strict=True):
            if not v:
                continue
            if p == t:
                out[i, p, 0] += 1
            else:
                out[i, p, 1] += 1  # a false positive of the predicted class
                out[i, t, 2] += 1  # a false negative of the true class
    return out


def test_counts_of_a_hand_computed_image():
    target = np.array([[[0, 1, 1], [2, 2, 0]]])
    pred = np.array([[[0, 1, 2], [2, 0, 1]]])
    valid = np.array([[[1, 1, 1], [1, 1, 0]]], dtype=bool)  # the last pixel is outside the scan
    counts = confusion_counts(pred, target, valid, 3)
    # class 0: tp at (0,0); fp at (1,1) (true 2). class 1: tp at (0,1); fn at (0,2).
    # class 2: fp at (0,2); tp at (1,0); fn at (1,1).
    expected = [[1, 1, 0], [1, 0, 1], [1, 1, 1]]
    np.testing.assert_array_equal(counts, [expected])
    assert counts.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_equal_a_pixel_loop_for_numpy_and_torch(seed):
    pred, target, valid = _random_case(seed)
    expected = _loop_counts(pred, target, valid, 4)
    np.testing.assert_array_equal(confusion_counts(pred, target, valid, 4), expected)
    as_torch = confusion_counts(
        torch.from_numpy(pred.astype(np.uint8)),
        torch.from_numpy(target),
        torch.from_numpy(valid.astype(np.uint8)),
        4,
    )
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.int64
    np.testing.assert_array_equal(as_torch.numpy(), expected)


def test_numpy_inputs_are_counted_a_few_images_at_a_time(monkeypatch):
    pred, target, valid = _random_case(8, n=7)
    monkeypatch.setattr(segmentation_metrics, "_PIXELS_PER_PIECE", 2 * pred[0].size)
    counts = confusion_counts(pred, target, valid, 4)
    np.testing.assert_array_equal(counts, _loop_counts(pred, target, valid, 4))
    assert confusion_counts(pred[:0], target[:0], valid[:0], 4).shape == (0, 4, 3)


def test_counts_read_only_maps_and_narrow_types(tmp_path):
    pred, target, valid = _random_case(3)
    path = tmp_path / "target.u16"
    target.astype(np.uint16).tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r", shape=target.shape)
    counts = confusion_counts(pred.astype(np.uint8), mapped, valid, 4)
    np.testing.assert_array_equal(counts, _loop_counts(pred, target, valid, 4))


def test_pixels_outside_the_scan_are_never_read():
    pred, target, valid = _random_case(4)
    before = confusion_counts(pred, target, valid, 4)
    pred, target = pred.copy(), target.copy()
    pred[~valid], target[~valid] = 99, -5  # not even class indices
    np.testing.assert_array_equal(confusion_counts(pred, target, valid, 4), before)


def test_counts_reject_bad_inputs():
    pred, target, valid = _random_case(5)
    with pytest.raises(ValueError, match="one shape"):
        confusion_counts(pred[:, :5], target, valid, 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_counts(pred, target, valid, 3)
    with pytest.raises(ValueError, match="integer"):
        confusion_counts(pred.astype(np.float32), target, valid, 4)


def test_dice_and_iou_by_hand_with_nan_for_classes_without_pixels():
    totals = np.array([[5, 1, 2], [0, 0, 0], [3, 0, 1], [0, 2, 0]])
    dice = dice_per_class(totals)
    iou = iou_per_class(totals)
    np.testing.assert_allclose(dice[[0, 2, 3]], [10 / 13, 6 / 7, 0.0])
    np.testing.assert_allclose(iou[[0, 2, 3]], [5 / 8, 3 / 4, 0.0])
    assert np.isnan(dice[1]) and np.isnan(iou[1])
    as_torch = dice_per_class(torch.from_numpy(totals))
    np.testing.assert_allclose(as_torch.numpy(), dice, equal_nan=True)


def test_scores_skip_classes_absent_from_truth_and_prediction():
    totals = np.array([[5, 1, 2], [0, 0, 0], [3, 0, 1], [0, 2, 0]])
    scores = scores_of_totals(totals)
    assert float(scores.dice) == pytest.approx(100 * (6 / 7 + 0.0) / 2)  # classes 2 and 3
    assert float(scores.miou) == pytest.approx(100 * (5 / 8 + 3 / 4 + 0.0) / 3)
    assert scores.dice_per_class.shape == (3,) and np.isnan(scores.dice_per_class[0])


def test_no_foreground_anywhere_has_no_dice():
    scores = scores_of_totals(np.array([[7, 0, 0], [0, 0, 0]]))
    assert np.isnan(scores.dice) and float(scores.miou) == 100.0


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_equal_scikit_learn_on_the_pooled_valid_pixels(seed):
    pred, target, valid = _random_case(seed, n=6, k=4)
    pred[pred == 3] = 2  # class 3 never predicted: F1 0 where it is true
    counts = confusion_counts(pred, target, valid, 4)
    scores = segmentation_scores(counts)
    y_true, y_pred = target[valid], pred[valid]
    labels = [0, 1, 2, 3]
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    jaccard = jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert (np.bincount(y_true, minlength=4) > 0).all()  # every class scored: no 0/0
    np.testing.assert_allclose(scores.dice_per_class, 100 * f1[1:], rtol=1e-12)
    np.testing.assert_allclose(scores.iou_per_class, 100 * jaccard, rtol=1e-12)
    assert scores.dice == pytest.approx(100 * np.nanmean(f1[1:]), rel=1e-12)
    assert scores.miou == pytest.approx(100 * np.nanmean(jaccard), rel=1e-12)
    assert isinstance(scores.dice, float) and isinstance(scores.miou, float)


def test_images_without_valid_pixels_change_nothing():
    pred, target, valid = _random_case(6)
    empty = np.zeros_like(valid)
    counts = confusion_counts(
        np.concatenate([pred, pred[:2]]),
        np.concatenate([target, target[:2]]),
        np.concatenate([valid, empty[:2]]),
        4,
    )
    assert (counts[-2:] == 0).all()
    alone = segmentation_scores(counts[:-2])
    together = segmentation_scores(counts)
    assert (together.dice, together.miou) == (alone.dice, alone.miou)


def test_weights_score_each_draw_as_its_resampled_set():
    pred, target, valid = _random_case(7, n=8)
    counts = confusion_counts(pred, target, valid, 4)
    draws = resample_counts(len(counts), 6, seed=3)
    weighted = segmentation_scores(counts, draws)
    assert weighted.dice.shape == weighted.miou.shape == (6,)
    assert weighted.dice_per_class.shape == (6, 3) and weighted.iou_per_class.shape == (6, 4)
    for b, row in enumerate(draws):
        resampled = np.repeat(np.arange(len(counts)), row)
        explicit = segmentation_scores(counts[resampled])
        assert weighted.dice[b] == pytest.approx(explicit.dice, rel=1e-12)
        assert weighted.miou[b] == pytest.approx(explicit.miou, rel=1e-12)
    ones = segmentation_scores(counts, np.ones((1, len(counts))))
    assert ones.dice[0] == pytest.approx(segmentation_scores(counts).dice, rel=1e-12)


def test_scores_reject_bad_shapes():
    counts = np.zeros((3, 4, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="one per image"):
        segmentation_scores(counts, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\[N, K, 3\]"):
        segmentation_scores(counts[:, :1])
