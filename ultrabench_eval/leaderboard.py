"""Leaderboards: models x tasks, test macro-F1 (x100) mean ± std over seeds, one table per
protocol, the mean over tasks in the last column."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tabulate import tabulate


def tables(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{protocol: {model: {task: {"mean": m, "std": s}}}}, protocols in first-seen order."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        scores = record["scores"]
        out[record["protocol"]["id"]][record["model"]["name"]][record["task"]["name"]] = {
            "mean": scores["mean"],
            "std": scores["std"],
        }
    return out


def render_markdown(records: list[dict[str, Any]]) -> str:
    """All protocols' tables, each under a heading, as GitHub markdown."""
    if not records:
        return "no result records\n"
    parts = []
    for protocol, by_model in tables(records).items():
        parts.append(f"### {protocol}: test macro-F1 (x100), mean ± std over seeds\n")
        parts.append(_render_one(by_model) + "\n")
    return "\n".join(parts)


def _render_one(by_model: dict[str, dict[str, dict[str, float]]]) -> str:
    tasks = sorted({task for cells in by_model.values() for task in cells})
    rows = []
    for model, cells in by_model.items():
        complete = all(t in cells for t in tasks)
        mean = sum(cells[t]["mean"] for t in tasks) / len(tasks) if complete else None
        row = [model] + [_cell(cells.get(t)) for t in tasks] + [_fmt(mean)]
        rows.append((mean if mean is not None else float("-inf"), row))
    rows.sort(key=lambda item: (-item[0], item[1][0]))
    headers = ["model", *tasks, "mean"]
    return tabulate([r for _, r in rows], headers=headers, tablefmt="github", disable_numparse=True)


def _cell(score: dict[str, float] | None) -> str:
    if score is None:
        return "–"
    return f"{score['mean']:.1f} ± {score['std']:.1f}"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
