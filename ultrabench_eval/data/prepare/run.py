"""`prepare`: raw download -> UltraBench-format folder, built aside and renamed into place, so
the folder under OUT_DIR is either whole and valid or absent.

Its `prepare.json` records which preparer made it. Several tasks share one folder (`aul` and
`aul-mass-seg` both read `aul_mass_v1.0.1`, made by `ultrabench:aul`): preparing the second
finds the folder made by its own preparer and leaves it as it is. A folder made by anything
else is replaced only with `overwrite`.
"""

from __future__ import annotations

import json
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
    # True when the folder was there already, made by the same preparer: nothing was written
    already_prepared: bool = False
    tasks: tuple[str, ...] = ()  # the tasks whose folder it is (known when already prepared)

    def already_prepared_line(self, task: str, out_dir: str | Path) -> str:
        """One line for a folder found already prepared: by what, for which tasks, what next."""
        return (
            f"{self.folder} is already prepared by {self.preparer} (the folder of tasks "
            f"{', '.join(self.tasks)}); check it with `ubench tasks check {task} {out_dir}` "
            "(--overwrite prepares it again)"
        )


def prepare(card: TaskCard, raw: Path, out: Path, overwrite: bool = False) -> Prepared:
    """Write `out/<card.dataset>` from the raw download at `raw` with the card's preparer.

    A folder already there that the same preparer made is kept as it is (the raw download is
    not read): the result says `already_prepared`. Any other folder needs `overwrite`."""
    preparer = preparer_for(card)
    raw, out = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    target = out / card.dataset
    if target.exists() and not overwrite:
        record = _prepare_record(target)
        made = _made_by(record, target, card, preparer.id)
        if made is None:
            other = record.get("preparer") if record else None
            mine = not isinstance(other, str) or other == preparer.id  # an incomplete record
            by = "" if mine else f" (made by preparer '{other}')"
            raise UserError(
                f"{target} already exists{by}; remove it, choose another OUT_DIR or pass "
                "--overwrite"
            )
        return made
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


def _prepare_record(target: Path) -> dict | None:
    """The folder's `prepare.json`; None when it has none (or an unreadable one)."""
    try:
        record = json.loads((target / "prepare.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _made_by(record: dict | None, target: Path, card: TaskCard, preparer: str) -> Prepared | None:
    """The folder as `preparer` left it, by its record; None when something else made it (or
    the record is missing or incomplete)."""
    if record is None or record.get("preparer") != preparer:
        return None
    sizes = record.get("split_sizes")
    if record.get("dataset") != card.dataset or not isinstance(sizes, dict):
        return None
    if not all(isinstance(sizes.get(s), int) for s in SPLITS):
        return None
    tasks = {card.name} | ({record["task"]} if isinstance(record.get("task"), str) else set())
    return Prepared(
        target,
        preparer,
        {s: sizes[s] for s in SPLITS},
        already_prepared=True,
        tasks=tuple(sorted(tasks | _tasks_sharing(card.dataset, preparer))),
    )


def _tasks_sharing(dataset: str, preparer: str) -> set[str]:
    """The registered tasks whose folder `preparer` writes."""
    from ultrabench_eval.core.registry import TASKS

    try:
        cards = [card for _, card in TASKS.items()]
    except UserError:  # an unreadable card folder: the tasks known here are enough for one line
        return set()
    return {c.name for c in cards if c.preparer == preparer and c.dataset == dataset}


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
