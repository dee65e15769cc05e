"""The leaderboard's tables as text: GitHub markdown (tabulate), LaTeX (pandas, booktabs rules),
HTML fragments (pandas) and a long CSV with one line per cell (pandas)."""

from __future__ import annotations

import html
import io
import re

import pandas as pd
from tabulate import tabulate

from ultrabench_eval.report.tables import Cell, Table
from ultrabench_eval.results.record import score_text


def cell_text(cell: Cell, pm: str = "±", missing: str = "–") -> str:
    """The plain text of a cell, without marks: a score reads `81.2 ± 1.3`, or `81.2 (1 fit)`
    when one probe fit stands for every seed (`results.record.score_text`)."""
    if cell.value is None:
        return missing
    if cell.fmt == "rank":
        return f"{cell.value:.2f}"
    if cell.fmt == "percent":
        return f"{cell.value:.1f} %"
    return score_text(cell.value, cell.std, cell.fits, pm)


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
    """One line per cell: table, model, column, value, std (empty for one fit), best,
    not_significantly_worse, fits (distinct probe fits behind a score; empty for a mean, a
    rank or a percentage)."""
    lines = [
        {
            "table": table.name,
            "model": model,
            "column": column,
            "value": cell.value,
            "std": cell.std,
            "best": cell.best,
            "not_significantly_worse": cell.not_worse,
            "fits": cell.fits,
        }
        for table in tables_
        for model, cells in table.rows
        for column, cell in zip(table.columns, cells, strict=True)
    ]
    frame = pd.DataFrame(lines)
    # whole numbers, blank where there are none (a plain column would turn them into 1.0)
    frame["fits"] = frame["fits"].astype("Int64")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()
