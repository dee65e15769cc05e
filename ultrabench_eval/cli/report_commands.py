"""What `ubench compare`, `check`, `plot` and `report` do; `ultrabench_eval.cli.parser` parses the
arguments. Each imports its module when it runs, so `ubench` starts fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError


def cmd_compare(args: argparse.Namespace) -> int:
    from ultrabench_eval.results import published
    from ultrabench_eval.results import record as results

    table = published.load(args.published)
    records = results.read_records(config.results_root(args.results))
    comparisons = published.compare(table, records, protocol=args.protocol)
    print(published.render(table, comparisons, args.format, args.protocol or ""), end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
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
    how = regression.describe_tolerance(args.tolerance, args.tolerance_std)
    print(f"{baseline_path} vs {root}\n")
    print(regression.report(checks, new, how), end="")
    return 1 if any(c.failed for c in checks) else 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ultrabench_eval.report import plots
    from ultrabench_eval.results import record as results

    root = config.results_root(args.results)
    records = results.read_records(root)
    out = Path(args.out) if args.out else root / "plots"
    written = plots.write_plots(records, out)
    for path in written:
        print(path)
    if not written:
        sys.stderr.write(f"ubench plot: nothing to plot in {root}\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
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
