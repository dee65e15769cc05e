"""The few-shot view (`ubench fewshot`): per model and probe, a row per label budget, smallest
first, tasks as columns."""

from __future__ import annotations

from collections import defaultdict

from tabulate import tabulate

from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.report.renderers import cell_text
from ultrabench_eval.report.tables import Cell
from ultrabench_eval.results.record import ResultRecord, Scores


def render_fewshot(records: list[ResultRecord]) -> str:
    """One table per (model, probe with its options): a row per label budget, smallest first,
    tasks as columns."""
    if not records:
        return "no result records\n"
    groups: dict[tuple[str, str], list[ResultRecord]] = defaultdict(list)
    for record in records:
        groups[(record.model_name, record.probe_variant)].append(record)
    parts = []
    for (model, probe), group in groups.items():
        tasks = sorted({r.task_name for r in group})
        rows: dict[Budget, dict[str, Scores]] = defaultdict(dict)
        for r in group:
            rows[r.budget][r.task_name] = r.scores
        body = []
        for budget in sorted(rows, key=lambda b: b.smallest_first):
            cells = rows[budget]
            complete = all(t in cells for t in tasks)
            mean = sum(cells[t].mean for t in tasks) / len(tasks) if complete else None
            body.append(
                [budget.row_label]
                + [cell_text(_score_cell(cells.get(t))) for t in tasks]
                + [cell_text(Cell(mean))]
            )
        parts.append(
            f"### {probe}, {model}: test macro-F1 (x100) by training labels, mean ± std over "
            "seeds\n"
        )
        parts.append(
            tabulate(
                body, headers=["labels", *tasks, "mean"], tablefmt="github", disable_numparse=True
            )
            + "\n"
        )
    return "\n".join(parts)


def _score_cell(scores: Scores | None) -> Cell:
    return Cell(None) if scores is None else Cell(scores.mean, scores.std)
