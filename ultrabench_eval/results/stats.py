"""Statistics on test macro-F1 (and, for segmentation, Dice): bootstrap confidence intervals,
paired comparisons between two models on the same test images (from two result records), and
aggregates across tasks.

Both bootstraps resample test images (with replacement) and score every seed's predictions on
each resample, so a score is the mean over seeds, as in the leaderboard. A record lists one
prediction per distinct probe fit (seeds that share a fit share it), so two records compare
whatever their number of fits: the mean over identical seeds is that one fit's score.
Resamples are drawn as multinomial counts, so all draws are scored at once with a few matrix
products instead of materialising thousands of resampled arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ultrabench_eval.probes.metrics import weighted_macro_f1
from ultrabench_eval.probes.segmentation_metrics import segmentation_scores
from ultrabench_eval.results.record import ResultRecord

DRAWS = 1000
LEVEL = 0.95


def resample_counts(n: int, draws: int, seed: int) -> np.ndarray:
    """How often each of `n` test images appears in each bootstrap draw: int [draws, n]."""
    rng = np.random.default_rng([seed, 0xB007])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    draws: int


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    *,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile interval of the seed-mean test macro-F1 (x100) over resampled test sets."""
    y_pred = np.atleast_2d(y_pred)
    counts = resample_counts(y_pred.shape[1], draws, seed)
    scores = 100.0 * weighted_macro_f1(y_true, y_pred, counts, n_classes).mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return Interval(float(low), float(high), level, draws)


@dataclass(frozen=True)
class PairedComparison:
    difference: float  # mean macro-F1 (x100) of A minus that of B, on the test set as it is
    interval: Interval  # bootstrap interval of the difference
    p_value: float  # two-sided: how unusual a difference of 0 is under the bootstrap


def paired_bootstrap(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_classes: int,
    *,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedComparison:
    """Compare two models on the same test images: each draw scores both on the same resample,
    so what the images share cancels out."""
    pred_a, pred_b = np.atleast_2d(pred_a), np.atleast_2d(pred_b)
    if pred_a.shape[1] != pred_b.shape[1] or pred_a.shape[1] != len(y_true):
        raise ValueError("both models must be scored on the same test images")
    ones = np.ones((1, len(y_true)))
    observed = 100.0 * (
        weighted_macro_f1(y_true, pred_a, ones, n_classes).mean()
        - weighted_macro_f1(y_true, pred_b, ones, n_classes).mean()
    )
    counts = resample_counts(len(y_true), draws, seed)
    diff = 100.0 * (
        weighted_macro_f1(y_true, pred_a, counts, n_classes).mean(axis=1)
        - weighted_macro_f1(y_true, pred_b, counts, n_classes).mean(axis=1)
    )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diff, [tail, 1.0 - tail])
    # The smallest two-sided level at which the percentile interval excludes 0 (add-one so a
    # finite number of draws never claims p = 0).
    below = (np.sum(diff <= 0.0) + 1) / (draws + 1)
    above = (np.sum(diff >= 0.0) + 1) / (draws + 1)
    p_value = min(1.0, 2.0 * min(below, above))
    return PairedComparison(
        float(observed), Interval(float(low), float(high), level, draws), float(p_value)
    )


def _seed_mean_dice(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Seed-mean Dice (x100) per draw: counts [S, N, K, 3], weights [draws, N] -> [draws]."""
    counts = np.asarray(counts)
    return np.mean([segmentation_scores(c, weights).dice for c in counts], axis=0)


def dice_bootstrap_ci(
    counts: np.ndarray, *, draws: int = DRAWS, level: float = LEVEL, seed: int = 0
) -> Interval:
    """Percentile interval of the seed-mean test Dice over resampled test images, from each
    fit's per-image confusion counts [S, N, K, 3] (a resampled set's Dice is of its summed
    counts, as the score itself)."""
    counts = np.asarray(counts)
    scores = _seed_mean_dice(counts, resample_counts(counts.shape[1], draws, seed))
    tail = (1.0 - level) / 2.0
    low, high = np.nanquantile(scores, [tail, 1.0 - tail])
    return Interval(float(low), float(high), level, draws)


def paired_dice_bootstrap(
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    *,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> PairedComparison:
    """`paired_bootstrap` for segmentation: two models' per-image counts on the same test
    images, Dice of A minus Dice of B on each shared resample."""
    counts_a, counts_b = np.asarray(counts_a), np.asarray(counts_b)
    if counts_a.shape[1:] != counts_b.shape[1:]:
        raise ValueError("both models must be scored on the same test images and classes")
    ones = np.ones((1, counts_a.shape[1]))
    observed = float(_seed_mean_dice(counts_a, ones)[0] - _seed_mean_dice(counts_b, ones)[0])
    weights = resample_counts(counts_a.shape[1], draws, seed)
    diff = _seed_mean_dice(counts_a, weights) - _seed_mean_dice(counts_b, weights)
    diff = diff[~np.isnan(diff)]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diff, [tail, 1.0 - tail])
    below = (np.sum(diff <= 0.0) + 1) / (len(diff) + 1)
    above = (np.sum(diff >= 0.0) + 1) / (len(diff) + 1)
    p_value = min(1.0, 2.0 * min(below, above))
    return PairedComparison(observed, Interval(float(low), float(high), level, draws), p_value)


def mean_rank(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """Average rank of each model over the tasks it has (1 = best, ties share the mean rank),
    as published tables report it. `scores[model][task]` = mean macro-F1."""
    tasks = sorted({task for row in scores.values() for task in row})
    ranks: dict[str, list[float]] = {model: [] for model in scores}
    for task in tasks:
        entrants = [(model, row[task]) for model, row in scores.items() if task in row]
        values = np.array([v for _, v in entrants])
        for model, value in entrants:
            better = np.sum(values > value)
            tied = np.sum(values == value)
            ranks[model].append(better + (tied + 1) / 2.0)
    return {model: float(np.mean(r)) for model, r in ranks.items() if r}


def paired_records(record: ResultRecord, reference: ResultRecord) -> PairedComparison | None:
    """`paired_bootstrap` of two records' stored test predictions (segmentation: their
    per-image counts); None when either has none, or when they were not scored on the same
    test images."""
    if record.has_counts and reference.has_counts:
        a, b = record.test, reference.test
        if a.ids_sha256 != b.ids_sha256:
            return None
        return paired_dice_bootstrap(a.counts_per_seed, b.counts_per_seed)
    if not record.has_predictions or not reference.has_predictions:
        return None
    a, b = record.test, reference.test
    if a.ids_sha256 != b.ids_sha256 or a.labels != b.labels:
        return None  # not the same test images: no paired test
    return paired_bootstrap(
        np.asarray(a.labels),
        np.asarray(a.predictions_per_seed),
        np.asarray(b.predictions_per_seed),
        record.n_classes,
    )
