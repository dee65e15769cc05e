"""`ubench leaderboard`, `compare`, `check`, `plot` and `report`: what the records of a results
folder say. Each handler imports its module when it runs, so `ubench` starts fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ultrabench_eval.cli.arguments import Subparsers, results_flag
from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.results.regression import DEFAULT_TOLERANCE

# -- leaderboard ------------------------------------------------------------------------------


def add_leaderboard(sub: Subparsers) -> None:
    p = sub.add_parser("leaderboard", help="print the leaderboard of a results folder")
    results_flag(p)
    p.add_argument("--format", choices=["markdown", "latex", "csv", "html"], default="markdown")
    p.set_defaults(handler=run_leaderboard)


def run_leaderboard(args: argparse.Namespace) -> int:
    from ultrabench_eval.report import leaderboard
    from ultrabench_eval.results import record as results

    records = results.read_records(config.results_root(args.results))
    print(leaderboard.render(records, args.format), end="")
    return 0


# -- compare ----------------------------------------------------------------------------------


def add_compare(sub: Subparsers) -> None:
    p = sub.add_parser("compare", help="our scores beside a published table's")
    p.add_argument(
        "--published", required=True, help="published table name (e.g. us-jepa-2026) or its file"
    )
    results_flag(p)
    p.add_argument("--protocol", help="our protocol to compare (default: the table's own)")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    p.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ultrabench_eval.results import published
    from ultrabench_eval.results import record as results

    table = published.load(args.published)
    records = results.read_records(config.results_root(args.results))
    comparisons = published.compare(table, records, protocol=args.protocol)
    print(published.render(table, comparisons, args.format, args.protocol or ""), end="")
    return 0


# -- check ------------------------------------------------------------------------------------


def add_check(sub: Subparsers) -> None:
    p = sub.add_parser("check", help="fail (exit 1) when scores dropped below a stored baseline")
    p.add_argument("--baseline", required=True, help="baseline JSON file")
    results_flag(p)
    tolerance = p.add_mutually_exclusive_group()
    tolerance.add_argument(
        "--tolerance",
        type=float,
        help=(
            "allowed drop in points of the score (macro-F1; Dice for segmentation tasks; "
            f"default {DEFAULT_TOLERANCE})"
        ),
    )
    tolerance.add_argument(
        "--tolerance-std", type=float, metavar="K", help="allowed drop: K x the baseline std"
    )
    p.add_argument(
        "--update", action="store_true", help="rewrite the baseline from the current records"
    )
    p.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Exit 1 when a score dropped by more than the tolerance."""
    from ultrabench_eval.results import record as results
    from ultrabench_eval.results import regression

    root = config.results_root(args.results)
    records = results.read_records(root)
    baseline_path = Path(args.baseline)
    if args.update:
        baseline = regression.write_baseline(baseline_path, records)
        print(f"wrote {len(baseline['cells'])} cells from {root} to {baseline_path}")
        return 0
    baseline = regression.read_baseline(baseline_path)
    checks, new = regression.check(
        baseline, records, tolerance=args.tolerance, tolerance_std=args.tolerance_std
    )
    how = regression.describe_tolerance(args.tolerance, args.tolerance_std, checks)
    print(f"{baseline_path} vs {root}\n")
    print(regression.report(checks, new, how), end="")
    return 1 if any(c.failed for c in checks) else 0


# -- plot, report -----------------------------------------------------------------------------


def add_plot(sub: Subparsers) -> None:
    p = sub.add_parser(
        "plot",
        help="few-shot, robustness and per-task plots (PNG and SVG), segmentation samples (PNG)",
    )
    results_flag(p)
    p.add_argument("--out", help="output folder (default: <results>/plots)")
    p.set_defaults(handler=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from ultrabench_eval.report import plots
    from ultrabench_eval.results import record as results

    root = config.results_root(args.results)
    records = results.read_records(root)
    out = Path(args.out) if args.out else root / "plots"
    written = plots.write_plots(records, out, results_dir=root)
    for path in written:
        print(path)
    if not written:
        sys.stderr.write(f"ubench plot: nothing to plot in {root}\n")
    return 0


def add_report(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="one static HTML page: tables, plots, run metadata")
    results_flag(p)
    p.add_argument("--out", help="HTML file (default: <results>/report.html)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ultrabench_eval.core import atomic
    from ultrabench_eval.report import html as report
    from ultrabench_eval.results import record as results

    root = config.results_root(args.results)
    records = results.read_records(root)
    if not records:
        raise UserError(f"no result records in {root}: run `ubench bench` first, or pass --results")
    out = Path(args.out) if args.out else root / "report.html"
    atomic.write_text(out, report.build(records, root))
    print(out)
    return 0
