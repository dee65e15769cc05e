"""`--data` naming a Hugging Face dataset (with the column flags), and `ubench tasks add`: a
task card for a dataset in one command."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import replace
from pathlib import Path

from ultrabench_eval.cli.arguments import Subparsers
from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError

_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COLUMN_FLAGS = {
    "image_column": "--image-column",
    "label_column": "--label-column",
    "group_column": "--group-column",
}


def hub_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how a Hugging Face dataset given to --data becomes a task."""
    parser.add_argument(
        "--image-column", help="Hugging Face dataset: the image column (default: its Image one)"
    )
    parser.add_argument(
        "--label-column",
        help="Hugging Face dataset: the label column (default: its ClassLabel one)",
    )
    parser.add_argument(
        "--group-column",
        help="Hugging Face dataset: the patient/case column (default: one of the usual names)",
    )
    parser.add_argument(
        "--hf-splits",
        metavar="OURS=THEIRS,...",
        help="Hugging Face dataset: its split for ours, e.g. validation=valid,test=eval "
        "(default: the usual names; a missing validation is carved from train)",
    )


def _source_flags(args: argparse.Namespace) -> dict:
    from ultrabench_eval.data.hub.source import parse_split_map

    values = {key: getattr(args, key, None) for key in _COLUMN_FLAGS}
    values = {key: value for key, value in values.items() if value is not None}
    for key, value in values.items():
        if not value.strip():
            raise UserError(f"{_COLUMN_FLAGS[key]} needs a column name")
    if getattr(args, "hf_splits", None):
        values["splits"] = parse_split_map(args.hf_splits)
    return values


def resolve_data(
    args: argparse.Namespace, tasks: list[str] | None
) -> tuple[list[str] | None, Path]:
    """(tasks, data root) from `--tasks` and `--data`: a Hugging Face dataset in --data
    registers the cards that read it (see `data.hub.tasks.cards_for_data`) and names them."""
    from ultrabench_eval.data.hub.source import source_from_data_flag

    source = source_from_data_flag(args.data)
    flags = _source_flags(args)
    if source is None:
        if flags:
            names = ", ".join(_COLUMN_FLAGS.get(k, "--hf-splits") for k in flags)
            raise UserError(
                f"{names} apply to a Hugging Face dataset given with --data (hf://ORG/NAME, a "
                "save_to_disk folder, parquet files or an imagefolder)"
            )
        return tasks, config.data_root(args.data)
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.hub.tasks import cards_for_data

    source = replace(source, **flags)
    names = cards_for_data(source, tasks, TASKS, progress=not getattr(args, "no_progress", False))
    return names, config.data_root(None)


def named_task(args: argparse.Namespace, name: str, data: str | None) -> tuple[str, Path]:
    """(task name, data root) for a command on one task whose data `data` may name as a
    Hugging Face dataset: a registered task reads it; an unknown name must be the task the
    dataset gives (`hf-<name>`, or the card an export carries)."""
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.data.hub.source import source_from_data_flag
    from ultrabench_eval.data.hub.tasks import cards_for_data

    source = source_from_data_flag(data)
    if source is None:
        return name, config.data_root(data)
    source = replace(source, **_source_flags(args))
    known = name in TASKS.names()
    given = cards_for_data(source, [name] if known else None, TASKS)[0]
    if given != name:
        raise UserError(
            f"task {name} is unknown, and the dataset {data} gives task {given}: name that one "
            "(or write a card for it with `ubench tasks add`)"
        )
    return name, config.data_root(None)


# -- tasks add --------------------------------------------------------------------------------


def add_tasks_add(tasks_sub: Subparsers) -> None:
    q = tasks_sub.add_parser(
        "add", help="write a task card for a Hugging Face dataset (hub id or local files)"
    )
    q.add_argument("name", help="the new task's name")
    q.add_argument(
        "--hf",
        required=True,
        metavar="ID",
        help="hub dataset (org/name, hf://org/name[@revision]) or a local save_to_disk, "
        "parquet or imagefolder folder",
    )
    hub_flags(q)
    q.add_argument(
        "--validation-fraction",
        type=float,
        help="share of train carved out as validation when the dataset has none (default 0.1)",
    )
    q.add_argument("--seed", type=int, help="the carving seed (default 0)")
    q.add_argument(
        "--cards",
        help=f"card folder to write into (default: the first ${config.TASKS_ENV} folder, "
        "else ./tasks)",
    )
    q.add_argument("--overwrite", action="store_true", help="replace a card of that name")
    q.set_defaults(handler=run_tasks_add)


def run_tasks_add(args: argparse.Namespace) -> int:
    """`ubench tasks add NAME --hf ID`: the card written, its classes and sizes, the next step."""
    import yaml

    from ultrabench_eval.core.atomic import write_text
    from ultrabench_eval.core.validation import check_dataclass
    from ultrabench_eval.core.writable import check_writable_folder
    from ultrabench_eval.data.hub.source import HubSource, is_local_dataset, parse_hub_id
    from ultrabench_eval.data.hub.tasks import card_from_features
    from ultrabench_eval.data.task_card import SPLITS, TaskCard, card_yaml

    name = args.name.strip()
    if not _TASK_NAME.fullmatch(name):
        raise UserError(
            f"task name '{args.name}' is not a card name: start with a letter or digit, then "
            "letters, digits, '.', '-' and '_' (e.g. thyroid-us)"
        )
    from ultrabench_eval.core.registry import TASKS

    if name in TASKS.names() and not args.overwrite:
        where = TASKS.get(name).path
        raise UserError(
            f"task {name} exists ({where or 'a card'}): pick another name, or pass --overwrite "
            "to write a card that replaces it"
        )
    local = Path(args.hf).expanduser()
    if is_local_dataset(local):
        source = HubSource(path=str(local.resolve()))
    elif local.exists():
        raise UserError(
            f"--hf {args.hf} is a folder but not a datasets dataset (no save_to_disk files, "
            "parquet files or images in it)"
        )
    elif _looks_local(args.hf):
        raise UserError(
            f"--hf {args.hf}: no such file or folder (give a local dataset, or a hub id ORG/NAME)"
        )
    else:
        repo, revision = parse_hub_id(args.hf)
        source = HubSource(id=repo, revision=revision)
    extra = {
        k: v
        for k, v in (("validation_fraction", args.validation_fraction), ("seed", args.seed))
        if v is not None
    }
    source = replace(source, **_source_flags(args), **extra)
    check_dataclass(source, "--hf", lambda f: "--" + f.replace("_", "-"))
    folder = _cards_folder(args.cards)
    check_writable_folder(folder, "card folder", "--cards")
    path = folder / f"{name}.yaml"
    if path.exists() and not args.overwrite:
        raise UserError(f"{path} exists: pass --overwrite to replace it, or pick another name")
    card = card_from_features(name, source)
    text = card_yaml(card)
    TaskCard.from_dict(yaml.safe_load(text), path)  # what is written reads back
    folder.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    sizes = "/".join(str(card.split_sizes.get(s, "?")) for s in SPLITS)
    print(f"wrote {path}")
    print(f"  classes: {', '.join(card.classes)}; train/validation/test: {sizes}")
    if card.hf and card.hf.group_column:
        print(f"  groups: column {card.hf.group_column} (no patient in two splits)")
    if not _read_by_registry(folder):
        print(
            f"  cards there are read when {config.TASKS_ENV} names the folder: "
            f"export {config.TASKS_ENV}={folder}"
        )
    print(f"next: ubench tasks check {name}; ubench bench --tasks {name}")
    return 0


def _looks_local(text: str) -> bool:
    """A path, not a hub id: it starts like one, or its first folder exists here."""
    if text.startswith(("/", ".", "~")) or "\\" in text:
        return True
    first = Path(text).parts[0] if Path(text).parts else ""
    return "/" in text and Path(first).is_dir()


def _cards_folder(flag: str | None) -> Path:
    if flag:
        return Path(flag).expanduser()
    extra = [p for p in os.environ.get(config.TASKS_ENV, "").split(os.pathsep) if p]
    return Path(extra[0]).expanduser() if extra else Path("tasks")


def _read_by_registry(folder: Path) -> bool:
    from ultrabench_eval.data.task_card import card_dirs

    try:
        return any(folder.resolve() == d.resolve() for d in card_dirs())
    except OSError:
        return False
