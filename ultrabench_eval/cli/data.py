"""`ubench synth`, `prepare` and `cache`: write the generated suite, prepare a raw download,
list or empty the cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ultrabench_eval.cli.arguments import (
    OneLineParser,
    Subparsers,
    cache_flag,
    csv_list,
    given,
)
from ultrabench_eval.cli.output import print_table
from ultrabench_eval.core import config
from ultrabench_eval.data.task_card import SPLITS

# -- synth ------------------------------------------------------------------------------------


def add_synth(sub: Subparsers) -> None:
    p = sub.add_parser("synth", help="write the generated ultrasound suite")
    p.add_argument(
        "--out", help=f"dataset root to write into (default: ${config.DATA_ENV} or ./data)"
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--tasks", type=csv_list, help="generated tasks to write (default: all)")
    p.add_argument("--num-images", type=int, help="images per task (default: the suite's size)")
    p.add_argument("--image-size", type=int, help="image side in pixels")
    p.add_argument("--workers", type=int, help="generator processes")
    p.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from ultrabench_eval.data.synth import write_suite

    paths = write_suite(
        config.data_root(args.out),
        num_images=args.num_images,
        tasks=args.tasks,
        **given(args, seed="seed", image_size="image_size", workers="workers"),
    )
    for path in paths:
        print(path)
    return 0


# -- prepare ----------------------------------------------------------------------------------


def add_prepare(sub: Subparsers) -> None:
    p = sub.add_parser(
        "prepare", help="turn a dataset's raw download into its UltraBench-format task folder"
    )
    p.add_argument("name", help="task name (see `ubench tasks`)")
    p.add_argument("raw_dir", help="the folder the raw download unpacks to (layouts: README)")
    p.add_argument("out_dir", help="dataset root: the task's folder is written below it")
    p.add_argument("--overwrite", action="store_true", help="replace the task's folder if present")
    p.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """`ubench prepare NAME RAW_DIR OUT_DIR`: the folder, its sizes beside the card's, the next
    step."""
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.prepare.run import prepare

    card = TASKS.get(args.name)
    prepared = prepare(card, Path(args.raw_dir), Path(args.out_dir), overwrite=args.overwrite)
    if prepared.already_prepared:
        print(prepared.already_prepared_line(card.name, args.out_dir))
        return 0
    print(f"prepared {card.name} with {prepared.preparer} into {prepared.folder}")
    got = "/".join(str(prepared.sizes[s]) for s in SPLITS)
    line = f"  train/validation/test: {got}"
    if card.split_sizes:
        expected = "/".join(str(card.split_sizes.get(s, "?")) for s in SPLITS)
        same = all(card.split_sizes.get(s, prepared.sizes[s]) == prepared.sizes[s] for s in SPLITS)
        line += f" (card: {expected}{'' if same else ', different: see the card description'})"
    print(line)
    print(f"next: ubench tasks check {card.name} {args.out_dir}")
    return 0


# -- cache ------------------------------------------------------------------------------------


def add_cache(sub: Subparsers) -> None:
    p = sub.add_parser(
        "cache",
        help="list or remove cached features, tokens, image and label stores, written-out datasets",
    )
    cache_sub = p.add_subparsers(dest="cache_command", required=True, parser_class=OneLineParser)
    q = cache_sub.add_parser("ls", help="list the cache")
    cache_flag(q)
    q.set_defaults(handler=run_cache_ls)
    q = cache_sub.add_parser("rm", help="remove cache entries")
    cache_flag(q)
    q.add_argument("--model", type=csv_list, help="features and tokens of these models")
    q.add_argument("--task", type=csv_list, help="features and tokens of these tasks")
    q.add_argument(
        "--dataset",
        type=csv_list,
        help="image and label stores and written-out Hugging Face datasets of these dataset "
        "folders",
    )
    q.add_argument(
        "--images",
        action="store_true",
        help="image and label stores and Hugging Face datasets written out (all, or --dataset)",
    )
    q.add_argument("--all", action="store_true", help="everything")
    q.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    q.set_defaults(handler=run_cache_rm)


def run_cache_ls(args: argparse.Namespace) -> int:
    from ultrabench_eval.features import cache_admin

    root = config.cache_root(args.cache)
    found = cache_admin.entries(root)
    print_table([_cache_row(e) for e in found], ["kind", "name", "what", "images", "size"])
    total = sum(e.bytes for e in found)
    print(f"{len(found)} entries, {total / 1e6:.1f} MB in {root}")
    return 0


def run_cache_rm(args: argparse.Namespace) -> int:
    from ultrabench_eval.features import cache_admin

    found = cache_admin.entries(config.cache_root(args.cache))
    chosen = cache_admin.select(
        found,
        models=args.model,
        tasks=args.task,
        datasets=args.dataset,
        images=args.images,
        everything=args.all,
    )
    for entry in chosen:
        print(
            ("would remove " if args.dry_run else "removing ")
            + _cache_row(entry)["what"]
            + f" ({entry.kind} {entry.name})"
        )
    freed = sum(e.bytes for e in chosen) if args.dry_run else cache_admin.remove(chosen)
    verb = "would free" if args.dry_run else "freed"
    print(f"{len(chosen)} entries, {verb} {freed / 1e6:.1f} MB")
    return 0


def _cache_row(entry: Any) -> dict[str, Any]:
    d = entry.detail
    what = entry.what
    return {
        "kind": entry.kind,
        "name": entry.name,
        "what": what,
        "images": d["images"],
        "size": f"{entry.bytes / 1e6:.1f} MB",
    }
