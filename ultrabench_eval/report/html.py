"""One static HTML page for a results folder: the leaderboard tables, the comparison with each
published table that shares cells with us, every plot (inline SVG) and the run's metadata.
It needs no server, no script and no file beside it: open it in any browser."""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from ultrabench_eval.report import leaderboard, plots
from ultrabench_eval.results import published

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1280px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
h3 { font-size: 1.0rem; margin: 1.4rem 0 0.4rem; }
table { border-collapse: collapse; margin: 0.3rem 0; font-size: 0.88rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.meta th, table.meta td { text-align: left; }
thead th { border-bottom: 2px solid #888; }
p.note { font-size: 0.8rem; color: #555; margin: 0.15rem 0; }
p.meta { color: #444; margin: 0.2rem 0; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #444; }
nav ul { columns: 2; font-size: 0.9rem; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def build(
    records: list[dict[str, Any]], results_dir: Path, published_folder: Path | None = None
) -> str:
    """The report page as one string."""
    sections = [
        ("leaderboard", "Leaderboard", _leaderboard(records)),
        ("published", "Published tables", _published(records, published_folder)),
        ("plots", "Plots", _plots(records)),
        ("metadata", "Run metadata", _metadata(records)),
    ]
    sections = [s for s in sections if s[2]]
    nav = "".join(
        f'<li><a href="#{key}">{html.escape(title)}</a></li>' for key, title, _ in sections
    )
    body = "\n".join(
        f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n{content}\n</section>'
        for key, title, content in sections
    )
    created = sorted(r.get("created") for r in records if r.get("created"))
    when = f"records from {created[0]} to {created[-1]}" if created else "records without dates"
    head = (
        f'<p class="meta">{len(records)} result records in <code>{html.escape(str(results_dir))}'
        f"</code>, {html.escape(when)}.</p>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>ultrabench-eval report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>ultrabench-eval report</h1>\n{head}\n<nav><ul>{nav}</ul></nav>\n{body}\n"
        "</body>\n</html>\n"
    )


def _leaderboard(records: list[dict[str, Any]]) -> str:
    return "\n".join(leaderboard.to_html(t) for t in leaderboard.build_tables(records))


def _published(records: list[dict[str, Any]], folder: Path | None) -> str:
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
            f"<h3>ours ({html.escape(table.protocol)}) vs {html.escape(table.title)}</h3>\n"
            f'<p class="note">source: {html.escape(table.source)}; '
            f"{html.escape(published.summary(comparisons))}</p>\n"
            + frame.to_html(index=False, border=0)
        )
    return "\n".join(parts)


def _plots(records: list[dict[str, Any]]) -> str:
    parts = []
    for plot in plots.make_plots(records):
        svg = plots.render(plot.figure, "svg").decode("utf-8")
        svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML5
        parts.append(
            f'<figure id="plot-{html.escape(plot.name)}">\n{svg}\n'
            f"<figcaption>{html.escape(plot.title)} (<code>{html.escape(plot.name)}</code>)"
            "</figcaption>\n</figure>"
        )
    return "\n".join(parts)


def _metadata(records: list[dict[str, Any]]) -> str:
    """What was run: models, tasks, protocols (corrupted views folded into their protocol) and
    the software, from the records themselves."""
    models: dict[str, dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    protocols: dict[str, dict[str, Any]] = {}
    views: dict[str, set[str]] = defaultdict(set)
    environment: dict[str, set[str]] = defaultdict(set)
    for r in sorted(records, key=_reading_order):
        m, t, p = r["model"], r["task"], r["protocol"]
        sizes = t.get("split_sizes") or {}
        models.setdefault(
            m["name"],
            {
                "model": m["name"],
                "fingerprint": m.get("fingerprint", ""),
                "weights": _text(m.get("weights")),
                "pooling": m.get("pooling", ""),
                "input": "x".join(str(v) for v in (m.get("input_spec") or {}).get("size", [])),
            },
        )
        tasks.setdefault(
            t["name"],
            {
                "task": t["name"],
                "dataset": t.get("dataset", ""),
                "classes": ", ".join(t.get("classes", [])),
                "train / validation / test": " / ".join(
                    str(sizes.get(s, "?")) for s in ("train", "validation", "test")
                ),
            },
        )
        base = leaderboard.base_protocol(r)
        protocols.setdefault(
            base,
            {
                "protocol": base,
                "probe": p.get("probe", ""),
                "options": _text(p.get("probe_options")),
                "labels": p.get("budget", ""),
                "seeds": len(p.get("seeds") or []),
                "image store": _text(p.get("image_store")),
            },
        )
        views[base].add(leaderboard.view_of(r))
        for package, version in (r.get("versions") or {}).items():
            environment[package].add(str(version))
        if r.get("git_revision"):
            environment["git revision"].add(r["git_revision"])
    for base, row in protocols.items():
        corrupted = len(views[base] - {"clean"})
        row["views"] = ", ".join(
            (["clean"] if "clean" in views[base] else [])
            + ([f"{corrupted} corrupted"] if corrupted else [])
        )
    environment_rows = [
        {"": k, "value": ", ".join(sorted(v))} for k, v in sorted(environment.items())
    ]
    parts = []
    for title, rows in (
        ("Models", sorted(models.values(), key=lambda row: row["model"])),
        ("Tasks", sorted(tasks.values(), key=lambda row: row["task"])),
        ("Protocols", list(protocols.values())),
        ("Environment", environment_rows),
    ):
        if rows:
            table = pd.DataFrame(rows).to_html(index=False, border=0, classes="meta")
            parts.append(f"<h3>{title}</h3>\n{table}")
    return "\n".join(parts)


def _reading_order(record: dict[str, Any]) -> tuple:
    """Protocols as the leaderboard orders them: probe, then label budget."""
    protocol = record["protocol"]
    return (protocol.get("probe", ""), leaderboard.budget_order(protocol), protocol["id"])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return re.sub(r"\s+", " ", json.dumps(value, sort_keys=True))
