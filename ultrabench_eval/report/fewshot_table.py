"""The few-shot view (`ubench fewshot`): per model and probe, a row per label budget, smallest
first, tasks as columns. The scores are the records' metric: macro-F1 for classification,
Dice (mean over the foreground classes) for segmentation; a table holds one metric."""

from __future__ import annotations

from collections import defaultdict

from tabulate import tabulate

from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.report.renderers import cell_text
from ultrabench_eval.report.tables import Cell
from ultrabench_eval.results.record import ONE_FIT_NOTE, ResultRecord, Scores

# how a heading names the scores, by `Scores.metric`
_SCORE_TEXT = {
    "macro_f1": "macro-F1 (x100)",
    "dice": "Dice (x100, mean over the foreground classes)",
}


def render_fewshot(records: list[ResultRecord]) -> str:
    """One table per (model, probe with its options): a row per label budget, smallest first,
    tasks as columns."""
    if not records:
        return "no result records\n"
    groups: dict[tuple[str, str, str | None], list[ResultRecord]] = defaultdict(list)
    for record in records:
        key = (record.model_name, record.probe_variant, record.scores.metric)
        groups[key].append(record)
    parts = []
    for (model, probe, metric), group in groups.items():
        tasks = sorted({r.task_name for r in group})
        rows: dict[Budget, dict[str, Scores]] = defaultdict(dict)
        for r in group:
            rows[r.budget][r.task_name] = r.scores
        body = []
        one_fit = any(s.single_fit for cells in rows.values() for s in cells.values())
        for budget in sorted(rows, key=lambda b: b.smallest_first):
            cells = rows[budget]
            complete = all(t in cells for t in tasks)
            mean = sum(cells[t].mean for t in tasks) / len(tasks) if complete else None
            body.append(
                [budget.row_label]
                + [cell_text(Cell.of(cells.get(t))) for t in tasks]
                + [cell_text(Cell(mean))]
            )
        parts.append(
            f"### {probe}, {model}: test {_SCORE_TEXT.get(metric or 'macro_f1', metric)} by "
            "training labels, mean ± std over seeds\n"
        )
        parts.append(
            tabulate(
                body, headers=["labels", *tasks, "mean"], tablefmt="github", disable_numparse=True
            )
            + "\n"
            + (f"\n_{ONE_FIT_NOTE}_\n" if one_fit else "")
        )
    return "\n".join(parts)
