"""`ubench prepare NAME RAW_DIR OUT_DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ultrabench_eval.data.task_card import SPLITS


def run_prepare(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.prepare.run import prepare

    card = TASKS.get(args.name)
    prepared = prepare(card, Path(args.raw_dir), Path(args.out_dir), overwrite=args.overwrite)
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
