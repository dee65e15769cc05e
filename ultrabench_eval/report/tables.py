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
from ultrabench_eval.results.record import ONE_FIT_NOTE, ResultRecord, Scores

ALPHA = 0.05  # a model is "not significantly worse" when the paired test gives p >= ALPHA
SCORE_HEADING = "test macro-F1 (x100), mean ± std over seeds"
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
    rows = []
    for model, cells in by_model.items():
        row = []
        for task in tasks:
            record = cells.get(task)
            if record is None:
                row.append(Cell(None))
                continue
            best, not_worse = marks[task].get(model, (False, False))
            row.append(Cell.of(record.scores, best, not_worse))
        mean = means.get(model)
        row.append(Cell(mean, None, "score", mean is not None and _close(mean, best_mean)))
        row.append(Cell(ranks[model], None, "rank", _close(ranks[model], best_rank)))
        rows.append((model, row))
    rows.sort(key=lambda item: (-(means.get(item[0], -np.inf)), item[0]))
    notes = [
        DAGGER_NOTE,
        "mean: over the tasks, for models that have them all; mean rank: over the tasks each "
        "model has (1 = best)",
        *one_fit_notes(rows),
    ]
    return Table(
        name=protocol_id,
        title=f"{protocol_id}: {records[0].budget.description}, {SCORE_HEADING}",
        columns=[*tasks, "mean", "mean rank"],
        rows=rows,
        notes=notes,
    )


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
    """Per model: mean macro-F1 per corruption (over severities and tasks), the clean score,
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
        title=f"{base} robustness: test macro-F1 (x100) on corrupted test images, probe fitted "
        "on clean features",
        columns=columns,
        rows=rows,
        notes=notes,
    )


def _or_lowest(value: float | None) -> float:
    return -np.inf if value is None else value


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
