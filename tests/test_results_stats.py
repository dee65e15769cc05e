import numpy as np
import pytest
from result_records import make_record
from sklearn.metrics import f1_score

from ultrabench_eval.results import stats
from ultrabench_eval.results.stats import (
    bootstrap_ci,
    mean_rank,
    paired_bootstrap,
    resample_counts,
    weighted_macro_f1,
)


def _predictions(rng, y, accuracy, n_classes):
    wrong = rng.integers(0, n_classes, size=y.shape)
    return np.where(rng.random(y.shape) < accuracy, y, wrong)


def test_weighted_macro_f1_is_macro_f1_of_the_resample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    preds = np.stack([_predictions(rng, y, a, 4) for a in (0.5, 0.8)])
    counts = resample_counts(len(y), 20, seed=3)
    got = weighted_macro_f1(y, preds, counts, 4)
    for b in range(20):
        index = np.repeat(np.arange(len(y)), counts[b])
        for s in range(2):
            want = f1_score(y[index], preds[s][index], average="macro", zero_division=0)
            assert got[b, s] == pytest.approx(want, abs=1e-12)
    ones = np.ones((1, len(y)))
    assert weighted_macro_f1(y, preds[:1], ones, 4)[0, 0] == pytest.approx(
        f1_score(y, preds[0], average="macro"), abs=1e-12
    )


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    """A classifier of known quality on a large population; 200 test sets of 300 images."""
    rng = np.random.default_rng(1)
    population = rng.integers(0, 3, 400_000)
    guesses = _predictions(rng, population, 0.7, 3)
    truth = 100 * f1_score(population, guesses, average="macro")
    hits = 0
    for trial in range(200):
        pick = rng.integers(0, len(population), 300)
        interval = bootstrap_ci(population[pick], guesses[pick], 3, draws=400, seed=trial)
        hits += interval.low <= truth <= interval.high
    assert 0.90 <= hits / 200 <= 0.99


def test_paired_test_sees_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    good = np.stack([_predictions(rng, y, 0.8, 3) for _ in range(3)])
    worse = np.stack([_predictions(rng, y, 0.65, 3) for _ in range(3)])
    real = paired_bootstrap(y, good, worse, 3, seed=0)
    assert real.difference > 5 and real.p_value < 0.05 and real.interval.low > 0
    same = paired_bootstrap(y, good, good.copy(), 3, seed=0)
    assert same.difference == 0.0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="same test images"):
        paired_bootstrap(y, good, worse[:, :10], 3)


def test_mean_rank_with_ties_and_missing_tasks():
    scores = {"a": {"t1": 90, "t2": 50}, "b": {"t1": 90, "t2": 60}, "c": {"t1": 10}}
    assert mean_rank(scores) == {"a": (1.5 + 2) / 2, "b": (1.5 + 1) / 2, "c": 3.0}


def test_a_one_fit_record_pairs_with_one_that_repeats_its_fit_per_seed():
    """Seeds that share one fit used to be listed once per seed: the paired test of the one-fit
    record is the same as that of the repeated one."""
    labels = [0, 1, 2] * 10
    answers = [(y + (i % 4 == 0)) % 3 for i, y in enumerate(labels)]
    other = [(y + (i % 3 == 0)) % 3 for i, y in enumerate(labels)]
    once = make_record("a", "t", labels=labels, predictions=[answers])
    repeated = make_record("a", "t", labels=labels, predictions=[answers] * 5)
    reference = make_record("b", "t", labels=labels, predictions=[other, other])
    assert once.scores.mean == pytest.approx(repeated.scores.mean)
    assert stats.paired_records(once, reference) == stats.paired_records(repeated, reference)


def _counts(rng, n, hit):
    """Per-image counts [N, 2, 3] of a binary segmentation: `hit` of each lesion's 100 pixels
    found, the rest missed; background counts to match."""
    lesion = np.stack([hit, 100 - hit, 100 - hit], axis=-1)  # tp, fp, fn of the lesion class
    background = np.stack([np.full(n, 900), 100 - hit, 100 - hit], axis=-1)
    return np.stack([background, lesion], axis=1).astype(np.int64)


def test_dice_interval_and_paired_test():
    rng = np.random.default_rng(0)
    n = 60
    good = _counts(rng, n, rng.integers(80, 95, n))
    poor = _counts(rng, n, rng.integers(40, 60, n))
    interval = stats.dice_bootstrap_ci(good[None])
    observed = 100 * 2 * good[:, 1, 0].sum() / (2 * good[:, 1, 0].sum() + 2 * good[:, 1, 1].sum())
    assert interval.low <= observed <= interval.high and interval.high - interval.low < 10
    clear = stats.paired_dice_bootstrap(good[None], poor[None])
    assert clear.difference > 20 and clear.p_value < 0.01
    same = stats.paired_dice_bootstrap(good[None], good[None])
    assert same.difference == 0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="same test images"):
        stats.paired_dice_bootstrap(good[None], poor[None, :10])
