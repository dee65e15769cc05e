"""Leaderboards: models x tasks, test macro-F1 (x100) mean ± std over seeds, as the tables in the
papers read.

One table per protocol: each probe with all training labels, each probe at each label budget
(fraction or shots), and, for records scored on corrupted test images, a robustness table per
probe and budget (mean over severities per corruption, clean, mean corrupted, relative drop).
In every column the best value is bold; in score columns the models whose score is not
significantly worse than the best one's (paired bootstrap over the same test images,
`stats.paired_bootstrap`) carry a dagger. The mean over tasks and the mean rank close each row.

Formats: markdown (tabulate), LaTeX (pandas, booktabs rules), HTML fragments (pandas) and a long
CSV with one line per cell (pandas).
"""

from __future__ import annotations

import html
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from ultrabench_eval.results import stats

FORMATS = ("markdown", "latex", "csv", "html")
ALPHA = 0.05  # a model is "not significantly worse" when the paired test gives p >= ALPHA
SCORE_HEADING = "test macro-F1 (x100), mean ± std over seeds"
DAGGER_NOTE = (
    "bold: best in its column; † not significantly worse than the best (paired bootstrap over "
    f"the same test images, {stats.DRAWS} draws, p ≥ {ALPHA:g})"
)
# `<corruption>-s<severity>[-seed<n>]`, the name `views.View` gives a corrupted view
_VIEW_NAME = re.compile(r"^(?P<corruption>.+)-s(?P<severity>\d+)(?:-seed\d+)?$")


@dataclass(frozen=True)
class Cell:
    """One table entry. `fmt`: "score" (mean, ± std when known), "percent" or "rank"."""

    value: float | None
    std: float | None = None
    fmt: str = "score"
    best: bool = False
    not_worse: bool = False  # not significantly worse than the column's best


@dataclass
class Table:
    name: str  # "linear", "linear@10%", "linear robustness"
    title: str
    columns: list[str]  # after the model column
    rows: list[tuple[str, list[Cell]]]
    notes: list[str] = field(default_factory=list)


# -- reading records ---------------------------------------------------------------------------


def view_of(record: dict[str, Any]) -> str:
    return record["protocol"].get("view", "clean")


def base_protocol(record: dict[str, Any]) -> str:
    """The protocol id without its view: a corrupted record's clean counterpart."""
    pid, view = record["protocol"]["id"], view_of(record)
    suffix = f"/{view}"
    return pid[: -len(suffix)] if view != "clean" and pid.endswith(suffix) else pid


def corruption_of(record: dict[str, Any]) -> tuple[str, int | None]:
    """(corruption, severity) of a corrupted record: the record's own fields when the robustness
    protocol writes them, else parsed from the view name."""
    protocol = record["protocol"]
    if protocol.get("corruption") and protocol.get("severity") is not None:
        return str(protocol["corruption"]), int(protocol["severity"])
    match = _VIEW_NAME.match(view_of(record))
    if match:
        return match["corruption"], int(match["severity"])
    return view_of(record), None


def budget_order(protocol: dict[str, Any]) -> tuple:
    """All labels first, then fractions from large to small, then shots from many to few."""
    if protocol.get("shots"):
        return (1, -protocol["shots"])
    return (0, -float(protocol.get("fraction") or 1.0))


def is_full_budget(protocol: dict[str, Any]) -> bool:
    """All training labels (not a fraction below 1, not K shots)."""
    return not protocol.get("shots") and float(protocol.get("fraction") or 1.0) == 1.0


# -- building tables ---------------------------------------------------------------------------


def build_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Every table of the leaderboard, in reading order: full-label tables, label budgets,
    robustness. Independent of the records' order."""
    clean: dict[str, list[dict[str, Any]]] = defaultdict(list)
    corrupted: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if view_of(record) == "clean":
            clean[record["protocol"]["id"]].append(record)
        else:
            corrupted[base_protocol(record)].append(record)

    def order(pid: str) -> tuple:
        protocol = clean[pid][0]["protocol"]
        kind = 0 if is_full_budget(protocol) else 1
        return (kind, protocol.get("probe", pid), budget_order(protocol), pid)

    out = [score_table(pid, clean[pid]) for pid in sorted(clean, key=order)]
    for base in sorted(corrupted):
        out.append(robustness_table(base, corrupted[base], clean.get(base, [])))
    return out


def score_table(protocol_id: str, records: list[dict[str, Any]]) -> Table:
    """Models x tasks for one clean protocol, with the mean over tasks and the mean rank."""
    by_model: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        by_model[record["model"]["name"]][record["task"]["name"]] = record
    tasks = sorted({task for cells in by_model.values() for task in cells})
    ranks = stats.mean_rank(
        {m: {t: r["scores"]["mean"] for t, r in cells.items()} for m, cells in by_model.items()}
    )
    marks = {task: _column_marks(task, by_model) for task in tasks}
    means = {
        model: float(np.mean([cells[t]["scores"]["mean"] for t in tasks]))
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
            row.append(
                Cell(record["scores"]["mean"], record["scores"]["std"], "score", best, not_worse)
            )
        mean = means.get(model)
        row.append(Cell(mean, None, "score", mean is not None and _close(mean, best_mean)))
        row.append(Cell(ranks[model], None, "rank", _close(ranks[model], best_rank)))
        rows.append((model, row))
    rows.sort(key=lambda item: (-(means.get(item[0], -np.inf)), item[0]))
    protocol = records[0]["protocol"]
    notes = [
        DAGGER_NOTE,
        "mean: over the tasks, for models that have them all; mean rank: over the tasks each "
        "model has (1 = best)",
    ]
    return Table(
        name=protocol_id,
        title=f"{protocol_id}: {_budget_words(protocol)}, {SCORE_HEADING}",
        columns=[*tasks, "mean", "mean rank"],
        rows=rows,
        notes=notes,
    )


def _budget_words(protocol: dict[str, Any]) -> str:
    if protocol.get("shots"):
        return f"{protocol['shots']} training labels per class"
    fraction = float(protocol.get("fraction") or 1.0)
    return (
        "all training labels" if fraction == 1.0 else f"{fraction * 100:g} % of the training labels"
    )


def _column_marks(
    task: str, by_model: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, tuple[bool, bool]]:
    """{model: (best, not significantly worse than the best)} for one task column. The test
    needs both records' test predictions on the same images; without them nobody is marked."""
    entrants = {m: cells[task] for m, cells in by_model.items() if task in cells}
    top = max(r["scores"]["mean"] for r in entrants.values())
    best = sorted(m for m, r in entrants.items() if _close(r["scores"]["mean"], top))
    out = {m: (m in best, False) for m in entrants}
    reference = entrants[best[0]]
    for model, record in entrants.items():
        if model in best:
            continue
        comparison = _paired(record, reference)
        if comparison is not None and comparison.p_value >= ALPHA:
            out[model] = (False, True)
    return out


def _paired(record: dict[str, Any], reference: dict[str, Any]) -> stats.PairedComparison | None:
    a, b = record.get("test") or {}, reference.get("test") or {}
    if not a.get("predictions_per_seed") or not b.get("predictions_per_seed"):
        return None
    if a.get("ids_sha256") != b.get("ids_sha256") or a.get("labels") != b.get("labels"):
        return None  # not the same test images: no paired test
    return stats.paired_bootstrap(
        np.asarray(a["labels"]),
        np.asarray(a["predictions_per_seed"]),
        np.asarray(b["predictions_per_seed"]),
        len(record["task"]["classes"]),
    )


def robustness_table(
    base: str, corrupted: list[dict[str, Any]], clean: list[dict[str, Any]]
) -> Table:
    """Per model: mean macro-F1 per corruption (over severities and tasks), the clean score,
    the mean over every corrupted view and the relative drop from clean, all over the tasks
    where the model has both clean and corrupted records."""
    clean_score = {(r["model"]["name"], r["task"]["name"]): r["scores"]["mean"] for r in clean}
    per_model: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )  # model -> task -> corruption -> scores
    for record in corrupted:
        key = (record["model"]["name"], record["task"]["name"])
        if key in clean_score:
            corruption, _ = corruption_of(record)
            per_model[key[0]][key[1]][corruption].append(record["scores"]["mean"])
    corruptions = sorted(
        {c for tasks in per_model.values() for by_c in tasks.values() for c in by_c}
    )
    summary: dict[str, list[float | None]] = {}
    for model, tasks in per_model.items():
        per_corruption = [
            _mean([float(np.mean(by_c[c])) for by_c in tasks.values() if c in by_c])
            for c in corruptions
        ]
        clean_mean = float(np.mean([clean_score[(model, t)] for t in tasks]))
        corrupted_mean = float(
            np.mean(
                [
                    np.mean([s for scores in by_c.values() for s in scores])
                    for by_c in tasks.values()
                ]
            )
        )
        drop = 100.0 * (clean_mean - corrupted_mean) / clean_mean if clean_mean > 0 else None
        summary[model] = [*per_corruption, clean_mean, corrupted_mean, drop]
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
    missing = sorted({r["model"]["name"] for r in corrupted} - set(summary))
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


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


# -- rendering ---------------------------------------------------------------------------------


def render(records: list[dict[str, Any]], fmt: str = "markdown") -> str:
    """The whole leaderboard in one format (see FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown leaderboard format '{fmt}' (one of: {', '.join(FORMATS)})")
    if not records:
        return "no result records\n"
    built = build_tables(records)
    if fmt == "csv":
        return to_csv(built)
    render_one = {"markdown": to_markdown, "latex": to_latex, "html": to_html}[fmt]
    return "\n".join(render_one(table) for table in built)


def render_markdown(records: list[dict[str, Any]]) -> str:
    """All protocols' tables, each under a heading, as GitHub markdown."""
    return render(records, "markdown")


def cell_text(cell: Cell, pm: str = "±", missing: str = "–") -> str:
    """The plain text of a cell, without marks."""
    if cell.value is None:
        return missing
    if cell.fmt == "rank":
        return f"{cell.value:.2f}"
    if cell.fmt == "percent":
        return f"{cell.value:.1f} %"
    if cell.std is None:
        return f"{cell.value:.1f}"
    return f"{cell.value:.1f} {pm} {cell.std:.1f}"


def to_markdown(table: Table) -> str:
    body = []
    for model, cells in table.rows:
        row = [model]
        for cell in cells:
            text = cell_text(cell)
            text = f"**{text}**" if cell.best else text
            row.append(f"{text} †" if cell.not_worse else text)
        body.append(row)
    grid = tabulate(
        body, headers=["model", *table.columns], tablefmt="github", disable_numparse=True
    )
    notes = "".join(f"\n_{note}_\n" for note in table.notes)
    return f"### {table.title}\n\n{grid}\n{notes}"


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell."""
    special = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "±": r"$\pm$",
        "–": "--",
        "≥": r"$\geq$",
        "†": r"$^{\dagger}$",
    }
    return "".join(special.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A `table` float with a booktabs `tabular` (needs `\\usepackage{booktabs}`)."""
    rows = []
    for model, cells in table.rows:
        row = [latex_escape(model)]
        for cell in cells:
            text = latex_escape(cell_text(cell, missing="--"))
            text = f"\\textbf{{{text}}}" if cell.best else text
            row.append(f"{text}$^{{\\dagger}}$" if cell.not_worse else text)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[latex_escape(c) for c in ["model", *table.columns]])
    caption = latex_escape(table.title + ". " + "; ".join(table.notes) + ".")
    label = "tab:ubench-" + re.sub(r"[^a-z0-9]+", "-", table.name.lower()).strip("-")
    text = frame.to_latex(
        index=False,
        escape=False,
        column_format="l" + "r" * len(table.columns),
        caption=caption,
        label=label,
        position="t",
    )
    return "% needs \\usepackage{booktabs}\n" + text


def to_html(table: Table) -> str:
    """A heading, the table and its notes, as an HTML fragment."""
    rows = []
    for model, cells in table.rows:
        row = [html.escape(model)]
        for cell in cells:
            text = html.escape(cell_text(cell))
            text = f"<b>{text}</b>" if cell.best else text
            if cell.not_worse:
                text += '<sup title="not significantly worse than the best">†</sup>'
            row.append(text)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[html.escape(c) for c in ["model", *table.columns]])
    grid = frame.to_html(index=False, escape=False, border=0, classes="leaderboard")
    anchor = re.sub(r"[^a-z0-9]+", "-", table.name.lower()).strip("-")
    notes = "".join(f'<p class="note">{html.escape(note)}</p>\n' for note in table.notes)
    return f'<h3 id="table-{anchor}">{html.escape(table.title)}</h3>\n{grid}\n{notes}'


def to_csv(tables_: list[Table]) -> str:
    """One line per cell: table, model, column, value, std, best, not_significantly_worse."""
    lines = [
        {
            "table": table.name,
            "model": model,
            "column": column,
            "value": cell.value,
            "std": cell.std,
            "best": cell.best,
            "not_significantly_worse": cell.not_worse,
        }
        for table in tables_
        for model, cells in table.rows
        for column, cell in zip(table.columns, cells, strict=True)
    ]
    buffer = io.StringIO()
    pd.DataFrame(lines).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


# -- the few-shot view: one table per model ----------------------------------------------------


def render_fewshot(records: list[dict[str, Any]]) -> str:
    """One table per (model, probe): a row per label budget, smallest first, tasks as columns."""
    if not records:
        return "no result records\n"
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["model"]["name"], record["protocol"]["probe"])].append(record)
    parts = []
    for (model, probe), group in groups.items():
        tasks = sorted({r["task"]["name"] for r in group})
        rows: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        order: dict[str, tuple] = {}
        for r in group:
            budget = _budget_label(r["protocol"])
            rows[budget][r["task"]["name"]] = r["scores"]
            order[budget] = _budget_order(r["protocol"])
        body = []
        for budget in sorted(rows, key=order.__getitem__):
            cells = rows[budget]
            complete = all(t in cells for t in tasks)
            mean = sum(cells[t]["mean"] for t in tasks) / len(tasks) if complete else None
            body.append(
                [budget]
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


def _score_cell(scores: dict[str, float] | None) -> Cell:
    return Cell(None) if scores is None else Cell(scores["mean"], scores["std"])


def _budget_label(protocol: dict[str, Any]) -> str:
    if protocol.get("shots"):
        return f"{protocol['shots']}-shot"
    return f"{protocol.get('fraction', 1.0) * 100:g} %"


def _budget_order(protocol: dict[str, Any]) -> tuple:
    if protocol.get("shots"):
        return (1, protocol["shots"])
    return (0, protocol.get("fraction", 1.0))
