"""The `ubench` command line. User errors end as one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ultrabench_eval.cli import commands, report_commands
from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of numbers"
        ) from None
    # percentages when any value is above 1 (then all are: "100,50,10,5,1")
    if any(v > 1.0 for v in values):
        values = tuple(v / 100.0 for v in values)
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must be in (0, 1] or (0, 100] %, got '{text}'")
    return values


def _shots(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in _csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of integers"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"shots must be positive integers, got '{text}'")
    return values


def _add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `bench`, shared by `sweep`."""
    p.add_argument(
        "--model",
        type=_csv,
        help="model name(s), comma-separated "
        "(default: the weight-free models pixels,hog,random-vit-s)",
    )
    p.add_argument(
        "--tasks",
        type=_csv,
        help="task name(s), comma-separated "
        "(default: the generated suite, written into the data root when missing)",
    )
    p.add_argument("--data", help=f"dataset root (default: ${config.DATA_ENV} or ./data)")
    p.add_argument(
        "--cache",
        help=f"image and feature cache root (default: ${config.CACHE_ENV} "
        "or ~/.cache/ultrabench-eval)",
    )
    p.add_argument(
        "--results",
        help=f"where records and tables go (default: ${config.RESULTS_ENV} or ./results/runs)",
    )
    p.add_argument("--weights", help="local weights file for the (single) model")
    p.add_argument("--pooling", help="feature pooling (default: the model's own)")
    p.add_argument("--probe", default="us-jepa-2026", help="probe preset (see `ubench probes`)")
    p.add_argument(
        "--probe-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a probe setting, e.g. standardize=true, max_epochs=100, ks=[1,5] (repeatable)",
    )
    p.add_argument(
        "--probe-backend",
        choices=["torch", "sklearn"],
        help="linear probe solver (default torch; sklearn is the reference)",
    )
    p.add_argument("--class-weight", choices=["balanced"], help="weight classes in the probe loss")
    p.add_argument("--seeds", type=int, default=5, help="seeds per protocol (default 5)")
    p.add_argument(
        "--fractions",
        type=_fractions,
        help="training-label fractions, e.g. 1,0.1 or, in percent, 100,50,10,5,1 "
        "(default: the few-shot sweep 100,50,10,5,1 %%)",
    )
    p.add_argument(
        "--shots", type=_shots, default=(), help="K training labels per class, e.g. 1,5,10"
    )
    p.add_argument(
        "--image-size",
        type=int,
        help="image store side in pixels (default: each model's input size, resized once)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: automatic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="refit and rewrite records even when their inputs are unchanged",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ubench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("synth", help="write the generated ultrasound suite")
    p.add_argument(
        "--out", help=f"dataset root to write into (default: ${config.DATA_ENV} or ./data)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", type=_csv, help="generated tasks to write (default: all)")
    p.add_argument("--num-images", type=int, help="images per task (default: the suite's size)")
    p.add_argument("--image-size", type=int, default=128, help="image side in pixels")
    p.add_argument("--workers", type=int, default=1, help="generator processes")

    p = sub.add_parser("models", help="list the registered models and their metadata")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--check",
        action="store_true",
        help="load each model from a random checkpoint in its official key layout",
    )
    p.add_argument("--models", type=_csv, help="with --check: only these models")
    p.add_argument(
        "--reduced",
        type=int,
        metavar="DEPTH",
        help="with --check: build models and files with DEPTH blocks (fast), not full size",
    )

    p = sub.add_parser("tasks", help="list the task cards, or check a prepared task folder")
    p.add_argument("--format", choices=["table", "json"], default="table")
    tasks_sub = p.add_subparsers(dest="tasks_command", parser_class=_Parser)
    q = tasks_sub.add_parser(
        "check", help="check a prepared folder against its card (sizes, files, leakage)"
    )
    q.add_argument("name", help="task name (see `ubench tasks`)")
    q.add_argument("data_dir", help="the dataset root holding the task's folder, or the folder")
    q.add_argument("--format", choices=["table", "json"], default="table")

    sub.add_parser("probes", help="list the registered probes")
    p = sub.add_parser("corruptions", help="list the corruptions, their parameters and suites")
    shows = p.add_subparsers(dest="corruptions_command", parser_class=_Parser)
    q = shows.add_parser("show", help="draw one image under each corruption and severity (PNG)")
    q.add_argument("--task", required=True, help="task name (see `ubench tasks`)")
    q.add_argument("--data", help=f"dataset root (default: ${config.DATA_ENV} or ./data)")
    q.add_argument("--image", type=int, default=0, help="index of the image in the split")
    q.add_argument("--split", choices=["train", "validation", "test"], default="test")
    q.add_argument("--out", required=True, help="PNG file to write")
    q.add_argument("--corruptions", type=_csv, help="rows, e.g. speckle,shadow (default: all)")
    q.add_argument("--preset", help="rows: a suite's corruptions (us-jepa-2026, ultrasound-5)")
    q.add_argument("--size", type=int, help="image side in pixels (default: the image's own)")
    q.add_argument("--seed", type=int, default=0, help="the corruptions' seed")

    p = sub.add_parser("bench", help="benchmark models on tasks and print the leaderboard")
    _add_bench_arguments(p)

    p = sub.add_parser(
        "fewshot", help="the bench over label budgets, one table row per fraction (or shots)"
    )
    _add_bench_arguments(p)

    p = sub.add_parser(
        "sweep", help="the bench with one cluster job per model (submitit: Slurm or local)"
    )
    _add_bench_arguments(p)
    p.add_argument("--executor", choices=["slurm", "local"], default="slurm")
    p.add_argument("--log-dir", default="results/sweeps", help="submitit logs and job files")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--account", help="Slurm account")
    p.add_argument("--gpus-per-node", type=int, default=1)
    p.add_argument("--cpus-per-task", type=int, default=8)
    p.add_argument("--mem-gb", type=int, default=64)
    p.add_argument("--timeout-min", type=int, default=240)
    p.add_argument("--no-wait", action="store_true", help="submit and return")

    p = sub.add_parser(
        "extract",
        help="compute features into the cache (runs under torchrun to use several processes)",
    )
    p.add_argument("--model", type=_csv, required=True, help="model name(s), comma-separated")
    p.add_argument("--tasks", type=_csv, required=True, help="task name(s), comma-separated")
    p.add_argument("--data", help=f"dataset root (default: ${config.DATA_ENV} or ./data)")
    p.add_argument("--cache", help=f"cache root (default: ${config.CACHE_ENV})")
    p.add_argument("--weights", help="local weights file for the (single) model")
    p.add_argument("--splits", type=_csv, default=["train", "validation", "test"])
    p.add_argument(
        "--views",
        type=_csv,
        default=["clean"],
        help="clean and/or <corruption>:<severity> (see `ubench corruptions`)",
    )
    p.add_argument("--image-size", type=int, help="image store side (default: the model's)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: automatic)")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("cache", help="list or remove cached features and image stores")
    cache_sub = p.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    q = cache_sub.add_parser("ls", help="list the cache")
    q.add_argument("--cache", help=f"cache root (default: ${config.CACHE_ENV})")
    q = cache_sub.add_parser("rm", help="remove cache entries")
    q.add_argument("--cache", help=f"cache root (default: ${config.CACHE_ENV})")
    q.add_argument("--model", type=_csv, help="features of these models")
    q.add_argument("--task", type=_csv, help="features of these tasks")
    q.add_argument("--dataset", type=_csv, help="image stores of these dataset folders")
    q.add_argument("--images", action="store_true", help="image stores (all, or --dataset)")
    q.add_argument("--all", action="store_true", help="everything")
    q.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")

    p = sub.add_parser("leaderboard", help="print the leaderboard of a results folder")
    p.add_argument(
        "--results", help=f"results folder (default: ${config.RESULTS_ENV} or ./results/runs)"
    )
    p.add_argument("--format", choices=["markdown", "latex", "csv", "html"], default="markdown")

    # -- robustness commands (corruption suites) --
    p = sub.add_parser(
        "robust", help="robustness: probe fitted on clean features, scored on corrupted test images"
    )
    _add_bench_arguments(p)
    p.add_argument(
        "--corruptions",
        type=_csv,
        help="corruptions (see `ubench corruptions`), composed with +: speckle,speckle+shadow",
    )
    p.add_argument("--preset", help="a corruption suite: us-jepa-2026 or ultrasound-5")
    p.add_argument(
        "--severities", help="e.g. 1-5 or 1,3 (default: the preset's, or every severity)"
    )
    p.add_argument(
        "--reference",
        default="pixels",
        help="reference model of the corruption error (mCE), or none (default: pixels)",
    )
    p.add_argument("--corruption-seed", type=int, default=0, help="the corruptions' seed")
    # -- dataset commands (prepare, tasks check) --
    p = sub.add_parser(
        "prepare", help="turn a dataset's raw download into its UltraBench-format task folder"
    )
    p.add_argument("name", help="task name (see `ubench tasks`)")
    p.add_argument("raw_dir", help="the folder the raw download unpacks to (layouts: README)")
    p.add_argument("out_dir", help="dataset root: the task's folder is written below it")
    p.add_argument("--overwrite", action="store_true", help="replace the task's folder if present")
    # -- report commands (compare, check, plot, report) --
    results_help = f"results folder (default: ${config.RESULTS_ENV} or ./results/runs)"
    p = sub.add_parser("compare", help="our scores beside a published table's")
    p.add_argument(
        "--published", required=True, help="published table name (e.g. us-jepa-2026) or its file"
    )
    p.add_argument("--results", help=results_help)
    p.add_argument("--protocol", help="our protocol to compare (default: the table's own)")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")

    p = sub.add_parser("check", help="fail (exit 1) when scores dropped below a stored baseline")
    p.add_argument("--baseline", required=True, help="baseline JSON file")
    p.add_argument("--results", help=results_help)
    tolerance = p.add_mutually_exclusive_group()
    tolerance.add_argument(
        "--tolerance", type=float, help="allowed drop in points of macro-F1 (default 1.0)"
    )
    tolerance.add_argument(
        "--tolerance-std", type=float, metavar="K", help="allowed drop: K x the baseline std"
    )
    p.add_argument(
        "--update", action="store_true", help="rewrite the baseline from the current records"
    )

    p = sub.add_parser("plot", help="few-shot, robustness and per-task plots (PNG and SVG)")
    p.add_argument("--results", help=results_help)
    p.add_argument("--out", help="output folder (default: <results>/plots)")

    p = sub.add_parser("report", help="one static HTML page: tables, plots, run metadata")
    p.add_argument("--results", help=results_help)
    p.add_argument("--out", help="HTML file (default: <results>/report.html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UserError as exc:
        sys.stderr.write(f"ubench {args.command}: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ubench: interrupted; finished work is kept, run again to resume\n")
        return 130


_COMMANDS = {
    "synth": commands.cmd_synth,
    "models": commands.cmd_models,
    "tasks": commands.cmd_tasks,
    "probes": commands.cmd_probes,
    "corruptions": commands.cmd_corruptions,
    "bench": commands.cmd_bench,
    "sweep": commands.cmd_sweep,
    "fewshot": commands.cmd_fewshot,
    "leaderboard": commands.cmd_leaderboard,
    "extract": commands.cmd_extract,
    "cache": commands.cmd_cache,
    # -- robustness commands --
    "robust": commands.cmd_robust,
    # -- dataset commands --
    "prepare": commands.cmd_prepare,
    # -- report commands --
    "compare": report_commands.cmd_compare,
    "check": report_commands.cmd_check,
    "plot": report_commands.cmd_plot,
    "report": report_commands.cmd_report,
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
