"""The `ubench` command line. User errors end as one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from ultrabench_eval import config
from ultrabench_eval.errors import UserError


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
    # accept percentages too: 10 -> 0.1
    values = tuple(v / 100.0 if v > 1.0 else v for v in values)
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must be in (0, 1] or (0, 100] %, got '{text}'")
    return values


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

    p = sub.add_parser("tasks", help="list the task cards")
    p.add_argument("--format", choices=["table", "json"], default="table")

    sub.add_parser("probes", help="list the registered probes")
    sub.add_parser("corruptions", help="list the registered corruptions")

    p = sub.add_parser("bench", help="benchmark models on tasks and print the leaderboard")
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
    p.add_argument("--probe", default="linear", help="probe name (see `ubench probes`)")
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
        default=(1.0, 0.1),
        help="training-label fractions, e.g. 1,0.1 or 100,10 (default 1,0.1)",
    )
    p.add_argument("--image-size", type=int, default=224, help="image store side in pixels")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (0: automatic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="refit and rewrite records even when their inputs are unchanged",
    )

    p = sub.add_parser("leaderboard", help="print the leaderboard of a results folder")
    p.add_argument(
        "--results", help=f"results folder (default: ${config.RESULTS_ENV} or ./results/runs)"
    )
    p.add_argument("--format", choices=["markdown"], default="markdown")
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


def _cmd_synth(args: argparse.Namespace) -> int:
    from ultrabench_eval.synth import write_suite

    out = config.data_root(args.out)
    paths = write_suite(
        out,
        seed=args.seed,
        num_images=args.num_images,
        image_size=args.image_size,
        tasks=args.tasks,
        workers=args.workers,
    )
    for path in paths:
        print(path)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ultrabench_eval.bench import make_adapter
    from ultrabench_eval.registry import MODELS

    if args.check:
        return _check_models([make_adapter(n) for n in (args.models or MODELS.names())], args)
    rows = []
    for name in MODELS.names():
        adapter = make_adapter(name)
        info = asdict(adapter.info)
        rows.append(
            {"name": name, **info, "input": _spec_text(adapter), "poolings": list(adapter.poolings)}
        )
    for prefix in MODELS.prefixes():
        rows.append(
            {
                "name": f"{prefix}<model_name>",
                "family": prefix.rstrip(":"),
                "architecture": "any timm model, with its pretrained config",
                "params": None,
                "pretraining_data": "per model",
                "weights_source": "hf-hub via timm, or --weights FILE",
                "license": "per model",
                "citation": "",
                "input": "per model",
                "poolings": ["cls", "mean", "avg"],
            }
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    columns = [
        "name",
        "family",
        "architecture",
        "params",
        "pretraining_data",
        "weights_source",
        "license",
        "input",
        "poolings",
    ]
    _print_table(rows, columns)
    return 0


def _check_models(adapters: list[Any], args: argparse.Namespace) -> int:
    from ultrabench_eval.model_check import check_models

    rows = []
    for row in check_models(adapters, depth=args.reduced):
        status = "pass" if row.ok else "FAIL"
        _info(f"{status} {row.model} {row.layout} ({row.seconds:.1f} s): {row.message}")
        rows.append(
            {
                "model": row.model,
                "layout": row.layout,
                "file": row.file_name,
                "result": status,
                "seconds": f"{row.seconds:.1f}",
                "detail": row.message,
            }
        )
    _print_table(rows, ["model", "layout", "file", "result", "seconds", "detail"])
    failed = sum(r["result"] == "FAIL" for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _spec_text(adapter: Any) -> str:
    spec = adapter.input_spec
    return f"{spec.size[0]}x{spec.size[1]}x{spec.channels} {spec.interpolation}"


def _cmd_tasks(args: argparse.Namespace) -> int:
    from ultrabench_eval.registry import TASKS

    rows = []
    for _, card in TASKS.items():
        data = {k: v for k, v in asdict(card).items() if k != "path"}
        data["classes"] = list(card.classes)
        rows.append(data)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        sizes = row["split_sizes"]
        row["splits (train/val/test)"] = (
            "/".join(str(sizes.get(s, "?")) for s in ("train", "validation", "test"))
            if sizes
            else ""
        )
        row["classes"] = f"{len(row['classes'])}: {', '.join(row['classes'])}"
    _print_table(
        rows,
        ["name", "dataset", "classes", "splits (train/val/test)", "organ", "source", "license"],
    )
    return 0


def _cmd_probes(args: argparse.Namespace) -> int:
    from ultrabench_eval.registry import PROBES

    _print_table(
        [
            {"name": n, "description": (getattr(p, "__doc__", "") or "").strip().splitlines()[0]}
            for n, p in PROBES.items()
        ],
        ["name", "description"],
    )
    return 0


def _cmd_corruptions(args: argparse.Namespace) -> int:
    from ultrabench_eval.registry import CORRUPTIONS

    _print_table(
        [
            {"name": n, "severities": f"1-{c.max_severity}", "description": c.description}
            for n, c in CORRUPTIONS.items()
        ],
        ["name", "severities", "description"],
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ultrabench_eval import bench, leaderboard

    data_root = config.data_root(args.data)
    tasks = args.tasks or bench.default_synth_tasks()
    probe_options: dict[str, Any] = {}
    if args.probe_backend:
        probe_options["backend"] = args.probe_backend
    if args.class_weight:
        probe_options["class_weight"] = args.class_weight
    cfg = bench.BenchConfig(
        models=args.model or list(bench.WEIGHT_FREE_MODELS),
        tasks=tasks,
        data_root=data_root,
        cache_root=config.cache_root(args.cache),
        results_root=config.results_root(args.results),
        weights=args.weights,
        pooling=args.pooling,
        probe=args.probe,
        probe_options=probe_options,
        seeds=args.seeds,
        fractions=args.fractions,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    bench.generate_missing_synth(cfg.tasks, data_root, log=_info)
    records = bench.run(cfg, log=_info)
    table = leaderboard.render_markdown(records)
    from ultrabench_eval import atomic

    atomic.write_text(cfg.results_root / "leaderboard.md", table)
    print(table, end="")
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ultrabench_eval import leaderboard, results

    print(
        leaderboard.render_markdown(results.read_records(config.results_root(args.results))), end=""
    )
    return 0


def _info(message: str) -> None:
    sys.stderr.write(message + "\n")


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from tabulate import tabulate

    body = [[_short(row.get(c)) for c in columns] for row in rows]
    print(tabulate(body, headers=columns, tablefmt="github", disable_numparse=True))


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value / 1e6:.1f}M" if value >= 100_000 else str(value)
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_COMMANDS = {
    "synth": _cmd_synth,
    "models": _cmd_models,
    "tasks": _cmd_tasks,
    "probes": _cmd_probes,
    "corruptions": _cmd_corruptions,
    "bench": _cmd_bench,
    "leaderboard": _cmd_leaderboard,
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
