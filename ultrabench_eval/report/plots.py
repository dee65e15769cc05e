"""Plots of result records (matplotlib, Agg canvas, PNG and SVG):

- few-shot curves: the test score against the fraction of training labels (or K shots), one
  panel per task, one line per model, the band is ± one std over seeds;
- robustness curves: the score against corruption severity (0 = clean), one panel per
  corruption, a row per task, ± one std over seeds;
- per-task bars: one group per task, one bar per model, whiskers = the record's 95 % bootstrap
  interval;
- segmentation samples (`make_overlay_plots`, from the overlay files beside the records): per
  task, a row per model with a few test images, their true masks and the predicted ones.

The score is the records' metric: macro-F1 for classification, Dice for segmentation. A figure
shows one metric: records of both kinds under one protocol (not something the bench writes)
get a figure each.

Figures are made with `matplotlib.figure.Figure` and an Agg canvas, never pyplot, so no global
backend is switched and nothing waits for a display. Output is reproducible: SVG ids come from
a fixed salt and no date is written.
"""

from __future__ import annotations

import io
import math
import textwrap
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from ultrabench_eval.core import atomic
from ultrabench_eval.core.naming import safe_name
from ultrabench_eval.results.overlays import Overlay, overlay_path, read_overlay
from ultrabench_eval.results.record import ResultRecord, Scores, metric_label

FORMATS = ("png", "svg")
_STYLE = {"svg.hashsalt": "ultrabench-eval", "svg.fonttype": "path", "font.size": 9}
_PANEL = (3.4, 2.7)  # inches per panel
_DPI = 120
# segmentation samples: inches per image panel; how strongly a class colours its pixels; how
# bright the image stays outside the scan (the probe is scored inside it only)
_SAMPLE_PANEL = 1.05
_MASK_ALPHA = 0.5
_OUTSIDE_SCAN = 0.35
_PALETTE_COLORS = 256
# one colour per foreground class, in class order: bright hues that read on a gray scan
_CLASS_COLORS = (
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#1f77b4",
    "#9467bd",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#8c564b",
)


@dataclass
class Plot:
    name: str  # file stem: fewshot-linear, robustness-linear, tasks-linear, overlay-<task>
    title: str
    figure: Figure
    raster: bool = False  # images rather than lines: smaller as PNG than as SVG


def make_plots(records: list[ResultRecord]) -> list[Plot]:
    """Every plot the records allow, in a stable order."""
    colors = _model_colors(records)
    clean = [r for r in records if r.is_clean]
    corrupted = [r for r in records if not r.is_clean]
    with matplotlib.rc_context(_STYLE):
        out = []
        for probe in sorted({r.probe for r in clean}):
            for metric, mine, suffix in _by_metric(r for r in clean if r.probe == probe):
                out.extend(_fewshot_plots(probe, mine, colors, metric, suffix))
        for base in sorted({r.base_protocol for r in corrupted}):
            mine = [r for r in corrupted if r.base_protocol == base]
            for metric, group, suffix in _by_metric(mine):
                reference = [
                    r for r in clean if r.protocol_id == base and r.scores.metric == metric
                ]
                out.append(_robustness_plot(base, group, reference, colors, metric, suffix))
        full = sorted({r.protocol_id for r in clean if r.is_full_budget})
        for protocol in full:
            for metric, group, suffix in _by_metric(r for r in clean if r.protocol_id == protocol):
                out.append(_task_bars(protocol, group, colors, metric, suffix))
    return out


def make_overlay_plots(records: list[ResultRecord], results_dir: Path) -> list[Plot]:
    """Per segmentation task and full-label clean protocol (`dense`), a figure of the test
    samples the bench keeps beside each record (`results.overlays`): a row per model, and per
    image the image, its true mask and the mask the first seed's fit predicted. A model whose
    overlay file is missing or unreadable has no row; a task with no row has no figure."""
    chosen = [r for r in records if r.is_segmentation and r.is_clean and r.is_full_budget]
    out = []
    with matplotlib.rc_context(_STYLE):
        for task, protocol in sorted({(r.task_name, r.protocol_id) for r in chosen}):
            rows = []
            for r in sorted(chosen, key=lambda r: r.model_name):
                if r.task_name == task and r.protocol_id == protocol:
                    overlay = _read_samples(overlay_path(results_dir, r.model_name, task, protocol))
                    if overlay is not None:
                        rows.append((r.model_name, overlay))
            if rows:
                probe = next(r.probe for r in chosen if r.protocol_id == protocol)
                out.append(_overlay_plot(task, protocol, probe, rows))
    return out


def write_plots(
    records: list[ResultRecord], out_dir: Path, results_dir: Path | None = None
) -> list[Path]:
    """Every plot as PNG and SVG under `out_dir`, each file written atomically; with
    `results_dir` (where the records and their overlay files are), the segmentation samples
    too, as PNG only (`overlay-<task>.png`: images, which SVG would only make larger)."""
    written = []
    overlays = make_overlay_plots(records, results_dir) if results_dir is not None else []
    for plot in make_plots(records) + overlays:
        for fmt in ("png",) if plot.raster else FORMATS:
            path = Path(out_dir) / f"{plot.name}.{fmt}"
            atomic.write_bytes(path, render(plot.figure, fmt, palette=plot.raster))
            written.append(path)
    return written


def render(figure: Figure, fmt: str, palette: bool = False) -> bytes:
    """A figure as PNG or SVG bytes, reproducibly (no date, fixed SVG ids). `palette`: a PNG
    of at most 256 colours, a third to two thirds the size of a full-colour one for the
    speckled images of a segmentation figure, with no visible loss at this resolution."""
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context(_STYLE):
        figure.savefig(buffer, format=fmt, dpi=_DPI, metadata=metadata, bbox_inches="tight")
    if fmt != "png" or not palette:
        return buffer.getvalue()
    buffer.seek(0)
    with Image.open(buffer) as full:
        # median cut without dithering: deterministic, and flat areas stay flat (compress well)
        reduced = full.convert("RGB").quantize(
            colors=_PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    reduced.save(out, format="PNG", optimize=True)
    return out.getvalue()


# -- the plots ---------------------------------------------------------------------------------


def _fewshot_plots(
    probe: str,
    records: list[ResultRecord],
    colors: dict[str, Any],
    metric: str | None,
    suffix: str = "",
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
            ax.set_ylabel(_score_label(metric))
            ax.grid(alpha=0.3)
        _legend(figure, axes)
        shots_suffix = "" if kind == "fraction" else "-shots"
        title = f"{probe}: few-shot {metric_label(metric)}, mean ± std over seeds"
        _suptitle(figure, title)
        yield Plot(f"fewshot-{safe_name(probe)}{suffix}{shots_suffix}", title, figure)


def _robustness_plot(
    base: str,
    corrupted: list[ResultRecord],
    clean: list[ResultRecord],
    colors: dict[str, Any],
    metric: str | None,
    suffix: str = "",
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
                ax.set_ylabel(_score_label(metric))
            ax.grid(alpha=0.3)
    _legend(figure, [ax for row in grid for ax in row])
    title = (
        f"{base}: robustness ({metric_label(metric)}), probe fitted on clean features, "
        "mean ± std over seeds"
    )
    _suptitle(figure, title)
    return Plot(f"robustness-{safe_name(base)}{suffix}", title, figure)


def _task_bars(
    protocol: str,
    records: list[ResultRecord],
    colors: dict[str, Any],
    metric: str | None,
    suffix: str = "",
) -> Plot:
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
    ax.set_ylabel(_score_label(metric))
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    title = (
        f"{protocol}: test {metric_label(metric)} per task, mean over seeds, "
        "95 % bootstrap interval"
    )
    ax.set_title(title)
    return Plot(f"tasks-{safe_name(protocol)}{suffix}", title, figure)


def _overlay_plot(task: str, protocol: str, probe: str, rows: list[tuple[str, Overlay]]) -> Plot:
    """A row per model; per sample image three panels: the image, the truth, the prediction."""
    classes = rows[0][1].classes
    colors = class_colors(len(classes))
    samples = max(len(overlay.images) for _, overlay in rows)
    figure = Figure(
        figsize=(_SAMPLE_PANEL * 3 * samples, _SAMPLE_PANEL * len(rows) + 0.7),
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(rows), 3 * samples, squeeze=False)
    above: list[str] = []
    for i, (model, overlay) in enumerate(rows):
        names = [_sample_name(v) for v in overlay.ids]
        for j in range(samples):
            panels = grid[i][3 * j : 3 * j + 3]
            if j >= len(overlay.images):
                for ax in panels:
                    ax.set_visible(False)
                continue
            image, valid = overlay.images[j], overlay.valid[j]
            shown = (
                np.repeat(image[..., None] / 255.0, 3, axis=-1),
                mask_overlay(image, overlay.truth[j], valid, colors),
                mask_overlay(image, overlay.prediction[j], valid, colors),
            )
            # a title names the sample where the row above showed another (or on the top row)
            named = i == 0 or j >= len(above) or above[j] != names[j]
            for ax, rgb, what in zip(panels, shown, (names[j], "truth", "prediction"), strict=True):
                ax.imshow(rgb, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if named:
                    ax.set_title(what, fontsize=7)
        grid[i][0].set_ylabel(model)
        above = names
    handles = [Patch(color=colors[k], label=name) for k, name in enumerate(classes) if k in colors]
    if handles:
        figure.legend(
            handles=handles, loc="outside lower center", ncols=len(handles), frameon=False
        )
    figure.suptitle(f"{task} ({protocol}): test samples, prediction of the first seed's fit")
    title = (  # the caption
        f"{task}, protocol {protocol}: the test images with the most true foreground, a row per "
        "model; per image the image, its true mask and the mask that the first seed's fit of "
        f"the {probe} probe predicted, a colour per class, outside the scan dimmed"
    )
    return Plot(f"overlay-{safe_name(task)}{_variant_suffix(protocol, probe)}", title, figure, True)


def class_colors(n_classes: int) -> dict[int, tuple[float, float, float]]:
    """{class index: RGB in [0, 1]} for the foreground classes (index 0, the background, has
    none), the same in every figure of a task."""
    return {k: to_rgb(_CLASS_COLORS[(k - 1) % len(_CLASS_COLORS)]) for k in range(1, n_classes)}


def mask_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    valid: np.ndarray,
    colors: dict[int, tuple[float, float, float]],
) -> np.ndarray:
    """The gray image as RGB in [0, 1] [H, W, 3] with each class's pixels blended with its
    colour (the background left as it is) and everything outside the scan dimmed."""
    rgb = np.repeat(image.astype(np.float64)[..., None] / 255.0, 3, axis=-1)
    for k, color in colors.items():
        where = mask == k
        rgb[where] = (1.0 - _MASK_ALPHA) * rgb[where] + _MASK_ALPHA * np.asarray(color)
    rgb[valid == 0] *= _OUTSIDE_SCAN
    return rgb


# -- helpers -----------------------------------------------------------------------------------


def _by_metric(
    records: Iterable[ResultRecord],
) -> Iterator[tuple[str | None, list[ResultRecord], str]]:
    """(metric, its records, file-name suffix) per metric among `records`: the suffix is empty
    when they share one metric (always, as the bench writes them: a protocol's probe is either
    a classifier or the dense probe), else `-<metric>` so that each figure keeps one y-axis."""
    groups: dict[str | None, list[ResultRecord]] = defaultdict(list)
    for r in records:
        groups[r.scores.metric].append(r)
    for metric in sorted(groups, key=lambda m: m or ""):
        suffix = f"-{safe_name(metric or 'none')}" if len(groups) > 1 else ""
        yield metric, groups[metric], suffix


def _score_label(metric: str | None) -> str:
    return f"test {metric_label(metric)} (x100)"


def _variant_suffix(protocol: str, probe: str) -> str:
    """`""` for the probe's default protocol (`dense`), else `-<protocol>` (`dense+epochs=5`)."""
    return "" if protocol == probe else f"-{safe_name(protocol)}"


def _sample_name(image_id: str) -> str:
    """A sample's short name for a panel title: the file name without folder or suffix."""
    stem = Path(image_id).stem or image_id
    return stem if len(stem) <= 18 else f"…{stem[-17:]}"


def _read_samples(path: Path) -> Overlay | None:
    """The overlay file's samples when they can be drawn, else None (no row for that model): a
    missing or damaged file, or arrays whose shapes disagree."""
    if not path.is_file():
        return None
    try:
        overlay = read_overlay(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # a truncated or corrupted archive: the figure goes on without it
    if overlay is None:
        return None
    arrays = (overlay.images, overlay.truth, overlay.prediction, overlay.valid)
    shape = overlay.images.shape
    if len(shape) != 3 or shape[0] == 0 or any(a.shape != shape for a in arrays):
        return None
    return overlay


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


def _suptitle(figure: Figure, title: str) -> None:
    """The figure's title, wrapped to the panels' width so that it leaves the legend (at the
    upper right, outside the panels) uncovered."""
    width = figure.get_size_inches()[0]
    figure.suptitle(textwrap.fill(title, width=max(36, int(width * 12))))


def _legend(figure: Figure, axes: list[Any]) -> None:
    """One legend for the figure, with every model that any panel shows."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        labels = sorted(seen)
        handles = [seen[label] for label in labels]
        figure.legend(handles, labels, loc="outside right center", frameon=False)
