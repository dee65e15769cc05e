"""Plots of result records (matplotlib, Agg canvas, PNG and SVG):

- few-shot curves: test macro-F1 against the fraction of training labels (or K shots), one
  panel per task, one line per model, the band is ± one std over seeds;
- robustness curves: macro-F1 against corruption severity (0 = clean), one panel per
  corruption, a row per task, ± one std over seeds;
- per-task bars: one group per task, one bar per model, whiskers = the record's 95 % bootstrap
  interval.

Figures are made with `matplotlib.figure.Figure` and an Agg canvas, never pyplot, so no global
backend is switched and nothing waits for a display. Output is reproducible: SVG ids come from
a fixed salt and no date is written.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ultrabench_eval.core import atomic
from ultrabench_eval.core.naming import safe_name
from ultrabench_eval.results.record import ResultRecord, Scores

FORMATS = ("png", "svg")
_STYLE = {"svg.hashsalt": "ultrabench-eval", "svg.fonttype": "path", "font.size": 9}
_PANEL = (3.4, 2.7)  # inches per panel
_DPI = 120


@dataclass
class Plot:
    name: str  # file stem: fewshot-linear, robustness-linear, tasks-linear
    title: str
    figure: Figure


def make_plots(records: list[ResultRecord]) -> list[Plot]:
    """Every plot the records allow, in a stable order."""
    colors = _model_colors(records)
    clean = [r for r in records if r.is_clean]
    corrupted = [r for r in records if not r.is_clean]
    with matplotlib.rc_context(_STYLE):
        out = []
        for probe in sorted({r.probe for r in clean}):
            mine = [r for r in clean if r.probe == probe]
            out.extend(_fewshot_plots(probe, mine, colors))
        for base in sorted({r.base_protocol for r in corrupted}):
            mine = [r for r in corrupted if r.base_protocol == base]
            reference = [r for r in clean if r.protocol_id == base]
            out.append(_robustness_plot(base, mine, reference, colors))
        full = sorted({r.protocol_id for r in clean if r.is_full_budget})
        for protocol in full:
            out.append(
                _task_bars(protocol, [r for r in clean if r.protocol_id == protocol], colors)
            )
    return out


def write_plots(records: list[ResultRecord], out_dir: Path) -> list[Path]:
    """Every plot as PNG and SVG under `out_dir`, each file written atomically."""
    written = []
    for plot in make_plots(records):
        for fmt in FORMATS:
            path = Path(out_dir) / f"{plot.name}.{fmt}"
            atomic.write_bytes(path, render(plot.figure, fmt))
            written.append(path)
    return written


def render(figure: Figure, fmt: str) -> bytes:
    """A figure as PNG or SVG bytes, reproducibly (no date, fixed SVG ids)."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format=fmt, dpi=_DPI, metadata=metadata, bbox_inches="tight")
    return buffer.getvalue()


# -- the plots ---------------------------------------------------------------------------------


def _fewshot_plots(
    probe: str, records: list[ResultRecord], colors: dict[str, Any]
) -> Iterator[Plot]:
    """A figure over fractions and one over shots, when there are at least two budgets."""
    fractions = [r for r in records if r.budget.shots is None]
    shots = [r for r in records if r.budget.shots is not None]
    for kind, group in (("fraction", fractions), ("shots", shots)):
        budgets = {r.budget.axis_value for r in group}
        if len(budgets) < 2:
            continue
        tasks = sorted({r.task_name for r in group})
        figure, axes = _grid(len(tasks))
        for ax, task in zip(axes, tasks, strict=False):
            lines: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
            for r in group:
                if r.task_name == task:
                    lines[r.model_name].append((r.budget.axis_value, r.scores.mean, r.scores.std))
            for model in sorted(lines):
                x, mean, std = (np.array(v) for v in zip(*sorted(lines[model]), strict=True))
                ax.plot(x, mean, marker="o", markersize=3, color=colors[model], label=model)
                ax.fill_between(x, mean - std, mean + std, color=colors[model], alpha=0.18, lw=0)
            ax.set_xscale("log")
            ticks = sorted(budgets)
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.set_title(task)
            ax.set_xlabel("% of training labels" if kind == "fraction" else "labels per class")
            ax.set_ylabel("test macro-F1 (x100)")
            ax.grid(alpha=0.3)
        _legend(figure, axes)
        suffix = "" if kind == "fraction" else "-shots"
        title = f"{probe}: few-shot, mean ± std over seeds"
        figure.suptitle(title)
        yield Plot(f"fewshot-{safe_name(probe)}{suffix}", title, figure)


def _robustness_plot(
    base: str,
    corrupted: list[ResultRecord],
    clean: list[ResultRecord],
    colors: dict[str, Any],
) -> Plot:
    """Rows: tasks; columns: corruptions; x: severity, with the clean score at 0."""
    points: dict[tuple[str, str, str], dict[int, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )  # (task, corruption, model) -> severity -> [(mean, std)] (several view seeds average)
    for r in corrupted:
        corruption, severity = r.corruption
        if severity is not None:
            key = (r.task_name, corruption, r.model_name)
            points[key][severity].append((r.scores.mean, r.scores.std))
    clean_at = {(r.task_name, r.model_name): r.scores for r in clean}
    tasks = sorted({k[0] for k in points})
    corruptions = sorted({k[1] for k in points})
    figure = Figure(
        figsize=(_PANEL[0] * len(corruptions), _PANEL[1] * len(tasks)), layout="constrained"
    )
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(tasks), len(corruptions), squeeze=False, sharey="row")
    for i, task in enumerate(tasks):
        for j, corruption in enumerate(corruptions):
            ax = grid[i][j]
            models = sorted(m for t, c, m in points if t == task and c == corruption)
            for model in models:
                by_severity = {
                    s: (np.mean([m for m, _ in v]), np.mean([d for _, d in v]))
                    for s, v in points[(task, corruption, model)].items()
                }
                if (task, model) in clean_at:
                    scores = clean_at[(task, model)]
                    by_severity[0] = (scores.mean, scores.std)
                x = np.array(sorted(by_severity))
                mean = np.array([by_severity[s][0] for s in x])
                std = np.array([by_severity[s][1] for s in x])
                ax.plot(x, mean, marker="o", markersize=3, color=colors[model], label=model)
                ax.fill_between(x, mean - std, mean + std, color=colors[model], alpha=0.18, lw=0)
            ax.set_xticks(range(0, 1 + max(s for k in points for s in points[k])))
            ax.set_title(corruption if len(tasks) == 1 else f"{task}: {corruption}")
            ax.set_xlabel("severity (0 = clean)")
            if j == 0:
                ax.set_ylabel("test macro-F1 (x100)")
            ax.grid(alpha=0.3)
    _legend(figure, [ax for row in grid for ax in row])
    title = f"{base}: robustness, probe fitted on clean features, mean ± std over seeds"
    figure.suptitle(title)
    return Plot(f"robustness-{safe_name(base)}", title, figure)


def _task_bars(protocol: str, records: list[ResultRecord], colors: dict[str, Any]) -> Plot:
    tasks = sorted({r.task_name for r in records})
    models = sorted({r.model_name for r in records})
    by_cell: dict[tuple[str, str], Scores] = {
        (r.model_name, r.task_name): r.scores for r in records
    }
    width = 0.8 / len(models)
    figure = Figure(
        figsize=(max(5.0, 1.1 * len(tasks) * max(1, len(models) / 3)) + 1.5, 3.6),
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for k, model in enumerate(models):
        x, mean, low, high = [], [], [], []
        for i, task in enumerate(tasks):
            scores = by_cell.get((model, task))
            if scores is None:
                continue
            interval = scores.ci95 or [scores.mean, scores.mean]
            x.append(i - 0.4 + width * (k + 0.5))
            mean.append(scores.mean)
            low.append(max(0.0, scores.mean - interval[0]))
            high.append(max(0.0, interval[1] - scores.mean))
        ax.bar(x, mean, width=width * 0.92, color=colors[model], label=model)
        ax.errorbar(
            x, mean, yerr=[low, high], fmt="none", ecolor="black", elinewidth=0.8, capsize=2
        )
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("test macro-F1 (x100)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    title = f"{protocol}: test macro-F1 per task, mean over seeds, 95 % bootstrap interval"
    ax.set_title(title)
    return Plot(f"tasks-{safe_name(protocol)}", title, figure)


# -- helpers -----------------------------------------------------------------------------------


def _model_colors(records: list[ResultRecord]) -> dict[str, Any]:
    """The same colour for a model in every figure."""
    models = sorted({r.model_name for r in records})
    palette = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(models)}


def _grid(panels: int) -> tuple[Figure, list[Any]]:
    columns = min(panels, 4)
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(_PANEL[0] * columns, _PANEL[1] * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for ax in axes[panels:]:
        ax.set_visible(False)
    return figure, axes[:panels]


def _legend(figure: Figure, axes: list[Any]) -> None:
    """One legend for the figure, with every model that any panel shows."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        labels = sorted(seen)
        handles = [seen[label] for label in labels]
        figure.legend(handles, labels, loc="outside right upper", frameon=False)
