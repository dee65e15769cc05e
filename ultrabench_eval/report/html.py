"""One static HTML page for a results folder: the leaderboard tables, the comparison with each
published table that shares cells with us, every plot (inline SVG), the segmentation samples
(a PNG per task, inline as a data URI, from the overlay files beside the records) and the run's
metadata. It needs no server, no script and no file beside it: open it in any browser."""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ultrabench_eval.report import leaderboard, plots
from ultrabench_eval.results import published
from ultrabench_eval.results.record import ResultRecord

# The page's layout is the template's; the tables and plots inside it are HTML already
# (pandas, the leaderboard renderer, matplotlib): the template marks them `safe`, and escapes
# every other value.
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("ultrabench_eval.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_SECTIONS = (
    ("leaderboard", "Leaderboard"),
    ("published", "Published tables"),
    ("plots", "Plots"),
    ("segmentation", "Segmentation"),
    ("metadata", "Run metadata"),
)


def build(
    records: list[ResultRecord], results_dir: Path, published_folder: Path | None = None
) -> str:
    """The report page as one string."""
    content = {
        "leaderboard": _leaderboard(records),
        "published": _published(records, published_folder),
        "plots": _plots(records),
        "segmentation": _segmentation(records, results_dir),
        "metadata": _metadata(records),
    }
    created = sorted(r.created for r in records if r.created)
    dates = f"records from {created[0]} to {created[-1]}" if created else "records without dates"
    return _TEMPLATES.get_template("report.html.j2").render(
        sections=[(key, title) for key, title in _SECTIONS if content[key]],
        record_count=len(records),
        results_dir=str(results_dir),
        dates=dates,
        **content,
    )


def _leaderboard(records: list[ResultRecord]) -> list[str]:
    return [leaderboard.to_html(t) for t in leaderboard.build_tables(records)]


def _published(records: list[ResultRecord], folder: Path | None) -> list[dict[str, Any]]:
    """A comparison for every published table we share at least one cell with."""
    parts = []
    for name in published.available(folder):
        table = published.load(name, folder)
        comparisons = published.compare(table, records)
        run = [c for c in comparisons if c.mean is not None]
        if not run:
            continue
        frame = pd.DataFrame([published.display_row(c) for c in run], columns=published.COLUMNS)
        parts.append(
            {
                "protocol": table.protocol,
                "title": table.title,
                "source": table.source,
                "summary": published.summary(comparisons),
                "table": frame.to_html(index=False, border=0),
            }
        )
    return parts


def _plots(records: list[ResultRecord]) -> list[dict[str, Any]]:
    parts = []
    for plot in plots.make_plots(records):
        svg = plots.render(plot.figure, "svg").decode("utf-8")
        svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML5
        parts.append({"name": plot.name, "title": plot.title, "svg": svg})
    return parts


def _segmentation(records: list[ResultRecord], results_dir: Path) -> list[dict[str, Any]]:
    """Per segmentation task, its samples figure as a palette PNG in base64 (images of speckle
    are far smaller as PNG than as SVG), inline so that the page stays one file."""
    parts = []
    for plot in plots.make_overlay_plots(records, results_dir):
        png = plots.render(plot.figure, "png", palette=True)
        parts.append(
            {"name": plot.name, "title": plot.title, "png": base64.b64encode(png).decode("ascii")}
        )
    return parts


def _metadata(records: list[ResultRecord]) -> list[tuple[str, str]]:
    """What was run: models, tasks, protocols (corrupted views folded into their protocol) and
    the software, from the records themselves."""
    models: dict[str, dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    protocols: dict[str, dict[str, Any]] = {}
    views: dict[str, set[str]] = defaultdict(set)
    environment: dict[str, set[str]] = defaultdict(set)
    for r in sorted(records, key=_reading_order):
        m, t, p = r.model, r.task, r.protocol
        sizes = t.split_sizes or {}
        models.setdefault(
            m.name,
            {
                "model": m.name,
                "fingerprint": m.fingerprint or "",
                "weights": _text(m.weights),
                "pooling": m.pooling or "",
                "input": "x".join(str(v) for v in (m.input_spec or {}).get("size", [])),
            },
        )
        tasks.setdefault(
            t.name,
            {
                "task": t.name,
                "dataset": t.dataset or "",
                "classes": ", ".join(t.classes or []),
                "train / validation / test": " / ".join(
                    str(sizes.get(s, "?")) for s in ("train", "validation", "test")
                ),
            },
        )
        base = r.base_protocol
        protocols.setdefault(
            base,
            {
                "protocol": base,
                "probe": p.probe,
                "options": _text(p.probe_options),
                "labels": p.budget or "",
                "seeds": _seeds(r),
                "image store": _text(p.image_store),
            },
        )
        views[base].add(r.view)
        for package, version in (r.versions or {}).items():
            environment[package].add(str(version))
        if r.git_revision:
            environment["git revision"].add(r.git_revision)
    for base, row in protocols.items():
        corrupted = len(views[base] - {"clean"})
        row["views"] = ", ".join(
            (["clean"] if "clean" in views[base] else [])
            + ([f"{corrupted} corrupted"] if corrupted else [])
        )
    environment_rows = [
        {"": k, "value": ", ".join(sorted(v))} for k, v in sorted(environment.items())
    ]
    tables = []
    for title, rows in (
        ("Models", sorted(models.values(), key=lambda row: row["model"])),
        ("Tasks", sorted(tasks.values(), key=lambda row: row["task"])),
        ("Protocols", list(protocols.values())),
        ("Environment", environment_rows),
    ):
        if rows:
            table = pd.DataFrame(rows).to_html(index=False, border=0, classes="meta")
            tables.append((title, table))
    return tables


def _seeds(record: ResultRecord) -> str:
    """`5`, or `5 (1 fit)` when seeds share probe fits."""
    seeds, fits = record.seed_count, record.fit_count
    if fits is None or fits == seeds:
        return str(seeds)
    return f"{seeds} ({fits} fit{'s' if fits > 1 else ''})"


def _reading_order(record: ResultRecord) -> tuple:
    """Protocols as the leaderboard orders them: probe, then label budget."""
    return (record.probe, record.budget.largest_first, record.protocol_id)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return re.sub(r"\s+", " ", json.dumps(value, sort_keys=True))
