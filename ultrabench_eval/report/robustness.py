"""The `ubench robust` table: per task, a row per model with its clean score, each corruption's
mean over severities, the mean over every corrupted view, the relative drop and mCE (computed by
`results.robustness`). The scores are the records' metric: macro-F1 for classification tasks,
Dice for segmentation tasks."""

from __future__ import annotations

from collections.abc import Iterable

from tabulate import tabulate

from ultrabench_eval.results.record import metric_label
from ultrabench_eval.results.robustness import Summary

# how the heading and the note name a task's score, by `Scores.metric`


def render(summaries: dict[str, dict[str, Summary]], reference: str | None, title: str = "") -> str:
    """A markdown table per task: rows models; columns clean, each corruption's mean over
    severities, the mean over all views, the relative drop and mCE."""
    parts = []
    for task in sorted(summaries):
        by_model = summaries[task]
        corruptions = sorted({c for s in by_model.values() for c in s.per_corruption})
        rows = []
        for model, s in sorted(by_model.items(), key=lambda item: -item[1].mean_corrupted):
            rows.append(
                [
                    model,
                    f"{s.clean:.1f}",
                    *[_fmt(s.per_corruption.get(c)) for c in corruptions],
                    f"{s.mean_corrupted:.1f}",
                    _fmt(s.relative_drop, " %"),
                    _fmt(s.mce),
                ]
            )
        headers = ["model", "clean", *corruptions, "mean", "drop", f"mCE (ref {reference})"]
        heading = f"### {task}" + (f", {title}" if title else "")
        metric = _metric_name(by_model.values())
        parts.append(
            f"{heading}: test {metric} (x100), seed mean; probe fitted on clean features\n\n"
            + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
            + "\n\n_corruption columns: mean over severities; mean: over every corrupted view; "
            "drop: (clean - mean) / clean; mCE: mean over corruptions of the summed error "
            f"(100 - {metric}) relative to {reference}'s, x100 (lower is better)_\n"
        )
    return "\n".join(parts) if parts else "no robustness records\n"


def _metric_name(summaries: Iterable[Summary]) -> str:
    """The name of the score the summaries hold (`macro-F1`, `Dice`; both, joined by ` / `,
    should one task's records disagree)."""
    metrics = sorted({s.metric or "macro_f1" for s in summaries})
    return " / ".join(metric_label(m) for m in metrics) or "macro-F1"


def _fmt(value: float | None, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.1f}{suffix}"
