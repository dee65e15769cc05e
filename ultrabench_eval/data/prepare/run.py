"""`prepare`: raw download -> UltraBench-format folder, built aside and renamed into place, so
the folder under OUT_DIR is either whole and valid or absent."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ultrabench_eval import __version__
from ultrabench_eval.core.atomic import write_json
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import DatasetError, open_dataset
from ultrabench_eval.data.prepare.registry import preparer_for
from ultrabench_eval.data.task_card import SPLITS, TaskCard

STAGING_PREFIX = ".ubench-prepare-"


@dataclass(frozen=True)
class Prepared:
    folder: Path
    preparer: str
    sizes: dict[str, int]


def prepare(card: TaskCard, raw: Path, out: Path, overwrite: bool = False) -> Prepared:
    """Write `out/<card.dataset>` from the raw download at `raw` with the card's preparer."""
    preparer = preparer_for(card)
    raw, out = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    target = out / card.dataset
    if target.exists() and not overwrite:
        raise UserError(
            f"{target} already exists; remove it, choose another OUT_DIR or pass --overwrite"
        )
    root = preparer.locate(raw)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{card.name}-", dir=out))
    except OSError as exc:
        raise UserError(f"cannot write into {out}: {exc}") from None
    try:
        preparer.write(root, staging)
        built = staging / card.dataset
        if not built.is_dir():
            raise UserError(f"preparer '{preparer.id}' wrote no {card.dataset} folder from {root}")
        sizes = _validate(card, staging, preparer.id)
        write_json(
            built / "prepare.json",
            {
                "task": card.name,
                "dataset": card.dataset,
                "preparer": preparer.id,
                "split": preparer.split,
                "prepared_by": f"ultrabench-eval {__version__}",
                "split_sizes": sizes,
            },
        )
        _publish(built, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Prepared(target, preparer.id, sizes)


def _validate(card: TaskCard, staging: Path, preparer: str) -> dict[str, int]:
    try:
        dataset = open_dataset(card, staging)
    except DatasetError as exc:
        # a preparer that writes an unreadable folder is a bug or an unexpected raw tree
        problems = "; ".join(exc.problems[:4])
        raise UserError(
            f"preparer '{preparer}' produced an invalid {card.dataset} folder ({problems}); "
            "nothing was written"
        ) from None
    return {name: len(dataset.splits[name]) for name in SPLITS}


def _publish(built: Path, target: Path, staging: Path) -> None:
    try:
        if target.exists():
            os.replace(target, staging / "replaced")
        os.replace(built, target)
    except OSError as exc:
        raise UserError(f"cannot move the prepared folder into {target}: {exc}") from None
