"""Leaderboards: models x tasks, test macro-F1 (x100) mean ± std over seeds, one table per
protocol, the mean over tasks in the last column."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tabulate import tabulate

from ultrabench_eval.stats import mean_rank


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
    ranks = mean_rank(
        {m: {t: c["mean"] for t, c in cells.items()} for m, cells in by_model.items()}
    )
    rows = []
    for model, cells in by_model.items():
        complete = all(t in cells for t in tasks)
        mean = sum(cells[t]["mean"] for t in tasks) / len(tasks) if complete else None
        row = [model] + [_cell(cells.get(t)) for t in tasks] + [_fmt(mean), f"{ranks[model]:.2f}"]
        rows.append((mean if mean is not None else float("-inf"), row))
    rows.sort(key=lambda item: (-item[0], item[1][0]))
    headers = ["model", *tasks, "mean", "mean rank"]
    return tabulate([r for _, r in rows], headers=headers, tablefmt="github", disable_numparse=True)


def _cell(score: dict[str, float] | None) -> str:
    if score is None:
        return "–"
    return f"{score['mean']:.1f} ± {score['std']:.1f}"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


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
            body.append([budget] + [_cell(cells.get(t)) for t in tasks] + [_fmt(mean)])
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


def _budget_label(protocol: dict[str, Any]) -> str:
    if protocol.get("shots"):
        return f"{protocol['shots']}-shot"
    return f"{protocol.get('fraction', 1.0) * 100:g} %"


def _budget_order(protocol: dict[str, Any]) -> tuple:
    if protocol.get("shots"):
        return (1, protocol["shots"])
    return (0, protocol.get("fraction", 1.0))
