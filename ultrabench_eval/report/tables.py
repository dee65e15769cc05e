"""The leaderboard's tables, built from result records (the renderers turn them into text).

One table per protocol: each probe with all training labels, each probe at each label budget
(fraction or shots), and, for records scored on corrupted test images, a robustness table per
probe and budget (mean over severities per corruption, clean, mean corrupted, relative drop;
`results.robustness` computes them). In every column the best value is bold; in score columns
the models whose score is not significantly worse than the best one's (paired bootstrap over the
same test images, `stats.paired_records`) carry a dagger. The mean over tasks and the mean rank
close each row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ultrabench_eval.results import robustness, stats
from ultrabench_eval.results.record import ONE_FIT_NOTE, ResultRecord, Scores, metric_label

ALPHA = 0.05  # a model is "not significantly worse" when the paired test gives p >= ALPHA
SCORE_HEADING = "test macro-F1 (x100), mean ± std over seeds"
SEGMENTATION_HEADING = (
    "test Dice (mean over foreground classes) and mIoU (mean over classes, background "
    "included), x100, mean ± std over seeds, inside the scan mask"
)
DAGGER_NOTE = (
    "bold: best in its column; † not significantly worse than the best (paired bootstrap over "
    f"the same test images, {stats.DRAWS} draws, p ≥ {ALPHA:g})"
)


@dataclass(frozen=True)
class Cell:
    """One table entry. `fmt`: "score" (mean, ± std when known, `(1 fit)` when one probe fit
    stands for every seed), "percent" or "rank"."""

    value: float | None
    std: float | None = None  # None for one fit: it has no spread
    fmt: str = "score"
    best: bool = False
    not_worse: bool = False  # not significantly worse than the column's best
    fits: int | None = None  # distinct probe fits behind a record's score

    @classmethod
    def of(cls, scores: Scores | None, best: bool = False, not_worse: bool = False) -> Cell:
        """A record's score: its mean, its std unless one fit, its number of fits."""
        if scores is None:
            return cls(None)
        return cls(scores.mean, scores.spread, "score", best, not_worse, scores.fit_count)


def one_fit_notes(rows: list[tuple[str, list[Cell]]]) -> list[str]:
    """The note that explains `(1 fit)`, when a cell shows it."""
    return [ONE_FIT_NOTE] if any(c.fits == 1 for _, cells in rows for c in cells) else []


@dataclass
class Table:
    name: str  # "linear", "linear@10%", "linear robustness"
    title: str
    columns: list[str]  # after the model column
    rows: list[tuple[str, list[Cell]]]
    notes: list[str] = field(default_factory=list)


def build_tables(records: list[ResultRecord]) -> list[Table]:
    """Every table of the leaderboard, in reading order: full-label tables, label budgets,
    robustness. Independent of the records' order."""
    clean: dict[str, list[ResultRecord]] = defaultdict(list)
    corrupted: dict[str, list[ResultRecord]] = defaultdict(list)
    for record in records:
        if record.is_clean:
            clean[record.protocol_id].append(record)
        else:
            corrupted[record.base_protocol].append(record)

    def order(pid: str) -> tuple:
        first = clean[pid][0]
        kind = 0 if first.is_full_budget else 1
        return (kind, first.probe, first.budget.largest_first, pid)

    out = [score_table(pid, clean[pid]) for pid in sorted(clean, key=order)]
    for base in sorted(corrupted):
        out.append(robustness_table(base, corrupted[base], clean.get(base, [])))
    return out


def score_table(protocol_id: str, records: list[ResultRecord]) -> Table:
    """Models x tasks for one clean protocol, with the mean over tasks and the mean rank."""
    by_model: dict[str, dict[str, ResultRecord]] = defaultdict(dict)
    for record in records:
        by_model[record.model_name][record.task_name] = record
    tasks = sorted({task for cells in by_model.values() for task in cells})
    ranks = stats.mean_rank(
        {m: {t: r.scores.mean for t, r in cells.items()} for m, cells in by_model.items()}
    )
    marks = {task: _column_marks(task, by_model) for task in tasks}
    means = {
        model: float(np.mean([cells[t].scores.mean for t in tasks]))
        for model, cells in by_model.items()
        if all(t in cells for t in tasks)
    }
    best_mean = max(means.values(), default=None)
    best_rank = min(ranks.values())
    segmentation = any(r.is_segmentation for r in records)
    best_miou = {task: _best_secondary(by_model, task, "miou") for task in tasks}
    rows = []
    for model, cells in by_model.items():
        row = []
        for task in tasks:
            record = cells.get(task)
            if record is None:
                row.extend([Cell(None)] * (2 if segmentation else 1))
                continue
            best, not_worse = marks[task].get(model, (False, False))
            row.append(Cell.of(record.scores, best, not_worse))
            if segmentation:
                row.append(_secondary_cell(record, "miou", best_miou[task]))
        mean = means.get(model)
        row.append(Cell(mean, None, "score", mean is not None and _close(mean, best_mean)))
        row.append(Cell(ranks[model], None, "rank", _close(ranks[model], best_rank)))
        rows.append((model, row))
    rows.sort(key=lambda item: (-(means.get(item[0], -np.inf)), item[0]))
    headline = "Dice" if segmentation else "score"
    notes = [
        DAGGER_NOTE,
        f"mean: of the {headline} over the tasks, for models that have them all; mean rank: by "
        f"{headline}, over the tasks each model has (1 = best)",
        *one_fit_notes(rows),
    ]
    if segmentation:
        notes.append(_chance_note(tasks, by_model))
    columns = [f"{t} {m}" for t in tasks for m in ("Dice", "mIoU")] if segmentation else tasks
    heading = SEGMENTATION_HEADING if segmentation else SCORE_HEADING
    return Table(
        name=protocol_id,
        title=f"{protocol_id}: {records[0].budget.description}, {heading}",
        columns=[*columns, "mean", "mean rank"],
        rows=rows,
        notes=notes,
    )


def chance_dice(record: ResultRecord) -> float | None:
    """The Dice (x100) of a guess drawn at random with each class's test frequency: a class's
    expected Dice is then its frequency, so this is the mean foreground frequency inside the
    scan masks. From a record's per-image counts (true pixels = tp + fn); None without them."""
    if not record.has_counts:
        return None
    counts = np.asarray(record.test.counts_per_seed[0], dtype=np.float64)  # [N, K, 3]
    truth = counts[..., 0].sum(axis=0) + counts[..., 2].sum(axis=0)
    return float(100.0 * np.mean(truth[1:] / truth.sum()))


def _chance_note(tasks: list[str], by_model: dict[str, dict[str, ResultRecord]]) -> str:
    chance = {}
    for task in tasks:
        values = [chance_dice(cells[task]) for cells in by_model.values() if task in cells]
        known = [v for v in values if v is not None]
        if known:
            chance[task] = known[0]
    shown = ", ".join(f"{task} {value:.1f}" for task, value in chance.items()) or "unknown"
    return (
        "chance: the Dice of a random guess at each class's test pixel frequency "
        f"(the mean foreground frequency): {shown}"
    )


def _best_secondary(
    by_model: dict[str, dict[str, ResultRecord]], task: str, name: str
) -> float | None:
    values = [
        score["mean"]
        for cells in by_model.values()
        if task in cells and (score := cells[task].secondary_score(name)) is not None
    ]
    return max(values, default=None)


def _secondary_cell(record: ResultRecord, name: str, best: float | None) -> Cell:
    """A secondary score's cell (mIoU): its mean, its std unless one fit; bold when best."""
    score = record.secondary_score(name)
    if score is None:
        return Cell(None)
    fits = record.scores.fit_count
    std = None if fits == 1 else score.get("std")
    return Cell(score["mean"], std, "score", _close(score["mean"], best), False, fits)


def _column_marks(
    task: str, by_model: dict[str, dict[str, ResultRecord]]
) -> dict[str, tuple[bool, bool]]:
    """{model: (best, not significantly worse than the best)} for one task column. The test
    needs both records' test predictions on the same images; without them nobody is marked."""
    entrants = {m: cells[task] for m, cells in by_model.items() if task in cells}
    top = max(r.scores.mean for r in entrants.values())
    best = sorted(m for m, r in entrants.items() if _close(r.scores.mean, top))
    out = {m: (m in best, False) for m in entrants}
    reference = entrants[best[0]]
    for model, record in entrants.items():
        if model in best:
            continue
        comparison = stats.paired_records(record, reference)
        if comparison is not None and comparison.p_value >= ALPHA:
            out[model] = (False, True)
    return out


def robustness_table(base: str, corrupted: list[ResultRecord], clean: list[ResultRecord]) -> Table:
    """Per model: mean score per corruption (over severities and tasks), the clean score,
    the mean over every corrupted view and the relative drop from clean, all over the tasks
    where the model has both clean and corrupted records."""
    cells = robustness.summarise_cells([*clean, *corrupted])
    per_model = robustness.across_tasks(cells)
    corruptions = sorted({c for s in cells.values() for c in s.per_corruption})
    summary: dict[str, list[float | None]] = {
        model: [
            *[scores.per_corruption.get(c) for c in corruptions],
            scores.clean,
            scores.mean_corrupted,
            scores.relative_drop,
        ]
        for model, scores in per_model.items()
    }
    columns = [*corruptions, "clean", "mean corrupted", "relative drop"]
    lower_is_better = {len(columns) - 1}
    bests = []
    for j in range(len(columns)):
        values = [v[j] for v in summary.values() if v[j] is not None]
        bests.append((min if j in lower_is_better else max)(values, default=None))
    rows = []
    for model, values in summary.items():
        fmt = ["score"] * (len(columns) - 1) + ["percent"]
        rows.append(
            (
                model,
                [
                    Cell(v, None, fmt[j], v is not None and _close(v, bests[j]))
                    for j, v in enumerate(values)
                ],
            )
        )
    rows.sort(key=lambda item: (-_or_lowest(item[1][-2].value), item[0]))
    missing = sorted({r.model_name for r in corrupted} - set(summary))
    notes = [
        "bold: best in its column; corruption columns: mean over severities and tasks; clean and "
        "mean corrupted: mean over the tasks the model has both for; relative drop: "
        "(clean - mean corrupted) / clean, in %"
    ]
    if missing:
        notes.append(f"no clean '{base}' record to compare with for: {', '.join(missing)}")
    return Table(
        name=f"{base} robustness",
        title=f"{base} robustness: test {metric_label(_metric(corrupted))} (x100) on corrupted "
        "test images, probe fitted on clean features",
        columns=columns,
        rows=rows,
        notes=notes,
    )


def _metric(records: list[ResultRecord]) -> str | None:
    """The records' metric (`macro_f1` or `dice`); None when they mix both."""
    metrics = {r.scores.metric or "macro_f1" for r in records}
    return metrics.pop() if len(metrics) == 1 else None


def _or_lowest(value: float | None) -> float:
    return -np.inf if value is None else value


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
