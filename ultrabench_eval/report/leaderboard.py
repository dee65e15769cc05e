"""Leaderboards, what `ubench bench` and `ubench leaderboard` print: models x tasks, test
macro-F1 (x100; Dice and mIoU for segmentation tasks) mean ± std over seeds, as the tables in
the papers read. `tables` builds them
from result records and `renderers` writes them in one of FORMATS (the few-shot view, a row per
label budget, is `fewshot_table`).
"""

from __future__ import annotations

from ultrabench_eval.report.renderers import to_csv, to_html, to_latex, to_markdown
from ultrabench_eval.report.tables import build_tables
from ultrabench_eval.results.record import ResultRecord

# the report page (report/html.py) builds the tables itself and renders them as HTML
__all__ = ["FORMATS", "build_tables", "render", "render_markdown", "to_html"]

FORMATS = ("markdown", "latex", "csv", "html")


def render(records: list[ResultRecord], fmt: str = "markdown") -> str:
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


def render_markdown(records: list[ResultRecord]) -> str:
    """All protocols' tables, each under a heading, as GitHub markdown."""
    return render(records, "markdown")
