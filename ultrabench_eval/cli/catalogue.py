"""`ubench models`, `tasks` (and `tasks check`), `probes` and `corruptions` (and `corruptions
show`): what the registries hold. Each handler imports what it needs when it runs, so `ubench`
starts fast."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ultrabench_eval.cli.arguments import OneLineParser, Subparsers, csv_list, data_flag, given
from ultrabench_eval.cli.hub import add_tasks_add, named_task
from ultrabench_eval.cli.output import info, print_table
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.task_card import SPLITS

# -- models -----------------------------------------------------------------------------------


def add_models(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list the registered models and their metadata")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--check",
        action="store_true",
        help="load each model from a random checkpoint in its official key layout",
    )
    p.add_argument("--models", type=csv_list, help="with --check: only these models")
    p.add_argument(
        "--reduced",
        type=int,
        metavar="DEPTH",
        help="with --check: build models and files with DEPTH blocks (fast), not full size",
    )
    p.set_defaults(handler=run_models)


_MODEL_COLUMNS = [
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


def run_models(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import MODELS
    from ultrabench_eval.models.factory import make_adapter

    if args.check:
        return _check_models(
            [make_adapter(n) for n in (args.models or MODELS.names())], args.reduced
        )
    rows = []
    for name in MODELS.names():
        adapter = make_adapter(name)
        metadata = asdict(adapter.info)
        rows.append(
            {
                "name": name,
                **metadata,
                "input": _spec_text(adapter),
                "poolings": list(adapter.poolings),
            }
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
    print_table(rows, _MODEL_COLUMNS)
    return 0


def _check_models(adapters: list[Any], depth: int | None) -> int:
    from ultrabench_eval.models.model_check import check_models

    rows = []
    for row in check_models(adapters, depth=depth):
        status = "pass" if row.ok else "FAIL"
        info(f"{status} {row.model} {row.layout} ({row.seconds:.1f} s): {row.message}")
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
    print_table(rows, ["model", "layout", "file", "result", "seconds", "detail"])
    failed = sum(r["result"] == "FAIL" for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _spec_text(adapter: Any) -> str:
    spec = adapter.input_spec
    return f"{spec.size[0]}x{spec.size[1]}x{spec.channels} {spec.interpolation}"


# -- tasks ------------------------------------------------------------------------------------


def add_tasks(sub: Subparsers) -> None:
    p = sub.add_parser("tasks", help="list the task cards, or check a prepared task folder")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=run_tasks)
    tasks_sub = p.add_subparsers(dest="tasks_command", parser_class=OneLineParser)
    q = tasks_sub.add_parser(
        "check", help="check a prepared folder against its card (sizes, files, leakage)"
    )
    q.add_argument("name", help="task name (see `ubench tasks`)")
    q.add_argument(
        "data_dir",
        nargs="?",
        help="the dataset root holding the task's folder, or the folder, or a Hugging Face "
        "dataset (hf://ORG/NAME, local files); not needed for a card with an hf source",
    )
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.add_argument("--cache", help="cache root (Hugging Face datasets are written out there)")
    q.set_defaults(handler=run_tasks_check)
    add_tasks_add(tasks_sub)


_TASK_COLUMNS = [
    "name",
    "dataset",
    "kind",
    "classes",
    "splits (train/val/test)",
    "organ",
    "preparer",
    "source",
    "license",
]


def run_tasks(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import TASKS

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
            "/".join(str(sizes.get(s, "?")) for s in SPLITS) if sizes else ""
        )
        row["classes"] = f"{len(row['classes'])}: {', '.join(row['classes'])}"
        if row["kind"] == "segmentation":
            row["kind"] = f"segmentation ({row['mask_field']})"
        if row.get("hf"):  # its data is a Hugging Face dataset, not a prepared folder
            hf = row["hf"]
            row["preparer"] = "hf://" + hf["id"] if hf.get("id") else f"hf: {hf['path']}"
    print_table(rows, _TASK_COLUMNS)
    return 0


def run_tasks_check(args: argparse.Namespace) -> int:
    """`ubench tasks check NAME DATA_DIR`: exit 1 when a check fails."""
    from ultrabench_eval.core import config
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.hub.source import source_from_data_flag
    from ultrabench_eval.data.task_check import (
        check_hub_task,
        check_task,
        format_report,
        report_dict,
    )

    source = source_from_data_flag(args.data_dir)
    name = named_task(args, args.name, args.data_dir)[0] if source is not None else args.name
    card = TASKS.get(name)
    if card.hf is not None:
        report = check_hub_task(card, config.cache_root(args.cache))
    elif args.data_dir is None:
        raise UserError(
            f"task {card.name} reads a prepared folder: give DATA_DIR (the dataset root holding "
            f"{card.dataset}/, or that folder)"
        )
    else:
        report = check_task(card, Path(args.data_dir))
    if args.format == "json":
        print(json.dumps(report_dict(report), indent=2))
    else:
        print(format_report(report))
    return 0 if report.passed else 1


# -- probes -----------------------------------------------------------------------------------


def add_probes(sub: Subparsers) -> None:
    p = sub.add_parser("probes", help="list the registered probes")
    p.set_defaults(handler=run_probes)


def run_probes(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import PROBES

    print_table(
        [
            {"name": n, "description": (getattr(p, "__doc__", "") or "").strip().splitlines()[0]}
            for n, p in PROBES.items()
        ],
        ["name", "description"],
    )
    return 0


# -- corruptions ------------------------------------------------------------------------------


def add_corruptions(sub: Subparsers) -> None:
    p = sub.add_parser("corruptions", help="list the corruptions, their parameters and suites")
    p.set_defaults(handler=run_corruptions)
    shows = p.add_subparsers(dest="corruptions_command", parser_class=OneLineParser)
    q = shows.add_parser("show", help="draw one image under each corruption and severity (PNG)")
    q.add_argument("--task", required=True, help="task name (see `ubench tasks`)")
    data_flag(q)
    q.add_argument("--image", type=int, default=0, help="index of the image in the split")
    q.add_argument("--split", choices=list(SPLITS))
    q.add_argument("--out", required=True, help="PNG file to write")
    q.add_argument("--corruptions", type=csv_list, help="rows, e.g. speckle,shadow (default: all)")
    q.add_argument("--preset", help="rows: a suite's corruptions (us-jepa-2026, ultrasound-5)")
    q.add_argument("--size", type=int, help="image side in pixels (default: the image's own)")
    q.add_argument("--seed", type=int, help="the corruptions' seed")
    q.set_defaults(handler=run_corruptions_show)


def run_corruptions(args: argparse.Namespace) -> int:
    from ultrabench_eval.corruptions import listing

    print(listing.render(), end="")
    return 0


def run_corruptions_show(args: argparse.Namespace) -> int:
    """`ubench corruptions show`: the grid of one image, a row per corruption."""
    from ultrabench_eval.core.validation import ImageSide, check_value
    from ultrabench_eval.corruptions.grid import write_grid
    from ultrabench_eval.corruptions.presets import get_preset

    if args.corruptions and args.preset:
        raise UserError("pass either --corruptions or --preset (not both)")
    rows = list(get_preset(args.preset).corruptions) if args.preset else args.corruptions
    if args.size is not None:
        check_value(ImageSide, args.size, "--size")
    task, data_root = named_task(args, args.task, args.data)  # --data may name a dataset
    out = write_grid(
        Path(args.out),
        task,
        data_root,
        args.image,
        rows=rows,
        size=args.size,
        **given(args, split="split", seed="seed"),
    )
    print(out)
    return 0
