"""`ubench export`: a prepared task as a Hugging Face dataset folder, ready to upload."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ultrabench_eval.cli.arguments import Subparsers, cache_flag, data_flag
from ultrabench_eval.core import config

_MB = 1 << 20


def shard_size(text: str) -> float:
    """`--max-shard-size MB`: a positive number of megabytes (2^20 bytes)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"--max-shard-size takes a number of MB above 0, e.g. 500, got '{text}'"
        )
    return value


def add_export(sub: Subparsers) -> None:
    p = sub.add_parser(
        "export", help="write a prepared task as a Hugging Face dataset folder (parquet shards)"
    )
    p.add_argument("name", help="task name (see `ubench tasks`)")
    p.add_argument("--out", required=True, help="the folder to write the dataset into")
    data_flag(p)
    cache_flag(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out when it exists and is not empty"
    )
    p.add_argument(
        "--max-shard-size",
        type=shard_size,
        metavar="MB",
        help="image and mask bytes per parquet shard at most (default: 500)",
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """`ubench export NAME --out DIR`: a line per split, where it went, how to share it."""
    from ultrabench_eval.cli.hub import named_task
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.hub.export import DEFAULT_MAX_SHARD_BYTES, export_task

    name, data_root = named_task(args, args.name, args.data)  # --data may name a dataset
    card = TASKS.get(name)
    limit = DEFAULT_MAX_SHARD_BYTES
    if args.max_shard_size is not None:
        limit = max(1, int(args.max_shard_size * _MB))
    summary = export_task(
        card,
        data_root,
        Path(args.out),
        cache_root=config.cache_root(args.cache),
        overwrite=args.overwrite,
        max_shard_bytes=limit,
        # shard progress on stderr: stdout keeps the summary
        log=lambda line: print(line, file=sys.stderr),
    )
    for name, split in summary.splits.items():
        shards = f"{split.shards} shard{'' if split.shards == 1 else 's'}"
        print(f"{name}: {split.rows} rows, {shards}, {split.bytes / _MB:.1f} MB")
    print(f"exported {card.name} to {args.out}")
    print(
        f"next: share it with `huggingface-cli upload ORG/NAME {args.out} --repo-type dataset`; "
        f"load it back with `ubench bench --data {args.out}`"
    )
    return 0
