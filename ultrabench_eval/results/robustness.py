"""Robustness scores from result records: one computation behind the `ubench robust` table and
the leaderboard's robustness table.

Per model and task, from the clean record of a protocol and its corrupted views, on the
records' score (macro-F1 for classification, Dice for segmentation; `Summary.metric`):

- per corruption, the mean score over its severities;
- the mean over every corrupted view and its relative drop from clean, in %;
- the corruption error CE_c = sum_s E(c, s) / sum_s E_ref(c, s) x 100, E = 100 - score, the
  error relative to a reference model (`ubench robust --reference`, `pixels` by default), and
  its mean over corruptions mCE, as ImageNet-C's (Hendrycks & Dietterich, 2019). 100: as robust
  as the reference; lower is better.

Across tasks (the leaderboard's rows), per model: each corruption's mean over the tasks that
have it, and the clean score, the mean corrupted score and the relative drop over the tasks
where the model has both clean and corrupted records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ultrabench_eval.results.record import ResultRecord, Scores

MIXED = "mixed"  # an average over tasks scored by different metrics


@dataclass
class Summary:
    """One model on one task."""

    clean: float
    per_corruption: dict[str, float]  # mean score over severities
    per_view: dict[str, float]  # view label -> score (seed mean)
    mean_corrupted: float
    relative_drop: float | None  # % of the clean score lost
    corruption_error: dict[str, float | None] = field(default_factory=dict)  # CE per corruption
    mce: float | None = None
    view_corruption: dict[str, str] = field(default_factory=dict, repr=False)
    metric: str | None = "macro_f1"  # the clean record's `Scores.metric`


@dataclass(frozen=True)
class AcrossTasks:
    """One model over the tasks where it has clean and corrupted records."""

    per_corruption: dict[str, float]  # mean over tasks of the mean over severities
    clean: float
    mean_corrupted: float
    relative_drop: float | None
    # the tasks' metric; "mixed" when classification and segmentation tasks are averaged
    metric: str | None = "macro_f1"


def summarise_cells(records: Iterable[ResultRecord]) -> dict[tuple[str, str], Summary]:
    """{(task, model): Summary} for the records of one probe protocol (clean ones and their
    corrupted views), in the order the records first name each (task, model). A corrupted
    record without the clean record of its protocol is left out."""
    records = list(records)
    clean = {(r.task_name, r.model_name, r.protocol_id): r.scores for r in records if r.is_clean}
    clean_score: dict[tuple[str, str], Scores] = {}
    scores: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    views: dict[tuple[str, str], dict[str, tuple[str, float]]] = defaultdict(dict)
    for record in records:
        key = (record.task_name, record.model_name)
        counterpart = (*key, record.base_protocol)
        if record.is_clean or counterpart not in clean:
            continue
        clean_score[key] = clean[counterpart]
        corruption, _ = record.corruption
        scores[key][corruption].append(record.scores.mean)
        views[key][record.view] = (corruption, record.scores.mean)
    out = {}
    for key, by_corruption in scores.items():
        base = clean_score[key].mean
        mean_corrupted = float(np.mean([s for group in by_corruption.values() for s in group]))
        out[key] = Summary(
            clean=base,
            per_corruption={c: float(np.mean(v)) for c, v in by_corruption.items()},
            per_view={label: score for label, (_, score) in views[key].items()},
            mean_corrupted=mean_corrupted,
            relative_drop=100.0 * (base - mean_corrupted) / base if base > 0 else None,
            view_corruption={label: c for label, (c, _) in views[key].items()},
            metric=clean_score[key].metric,
        )
    return out


def summarise(
    records: Iterable[ResultRecord], reference: str | None
) -> dict[str, dict[str, Summary]]:
    """{task: {model: Summary}} for the records of one probe protocol, with the corruption
    errors relative to `reference` (its records on the same task and views; None: none)."""
    out: dict[str, dict[str, Summary]] = defaultdict(dict)
    for (task, model), summary in summarise_cells(records).items():
        out[task][model] = summary
    if reference:
        for by_model in out.values():
            ref = by_model.get(reference)
            for summary in by_model.values():
                _corruption_errors(summary, ref)
    return dict(out)


def _corruption_errors(summary: Summary, ref: Summary | None) -> None:
    """CE per corruption over the views both have, and their mean (mCE)."""
    if ref is None:
        return
    errors: dict[str, list[float]] = defaultdict(list)
    ref_errors: dict[str, list[float]] = defaultdict(list)
    for label, score in summary.per_view.items():
        if label not in ref.per_view:
            continue
        corruption = ref.view_corruption[label]
        errors[corruption].append(100.0 - score)
        ref_errors[corruption].append(100.0 - ref.per_view[label])
    for corruption in summary.per_corruption:
        denominator = sum(ref_errors.get(corruption, []))
        summary.corruption_error[corruption] = (
            100.0 * sum(errors[corruption]) / denominator if denominator > 0 else None
        )
    known = [v for v in summary.corruption_error.values() if v is not None]
    summary.mce = float(np.mean(known)) if known else None


def across_tasks(cells: dict[tuple[str, str], Summary]) -> dict[str, AcrossTasks]:
    """{model: AcrossTasks} from `summarise_cells`, models in the order the cells name them."""
    by_model: dict[str, list[Summary]] = defaultdict(list)
    for (_, model), summary in cells.items():
        by_model[model].append(summary)
    corruptions = sorted({c for s in cells.values() for c in s.per_corruption})
    out = {}
    for model, summaries in by_model.items():
        clean = float(np.mean([s.clean for s in summaries]))
        corrupted = float(np.mean([s.mean_corrupted for s in summaries]))
        per_corruption = {
            c: float(np.mean([s.per_corruption[c] for s in summaries if c in s.per_corruption]))
            for c in corruptions
            if any(c in s.per_corruption for s in summaries)
        }
        metrics = {s.metric for s in summaries}
        out[model] = AcrossTasks(
            per_corruption=per_corruption,
            clean=clean,
            mean_corrupted=corrupted,
            relative_drop=100.0 * (clean - corrupted) / clean if clean > 0 else None,
            metric=metrics.pop() if len(metrics) == 1 else MIXED,
        )
    return out
