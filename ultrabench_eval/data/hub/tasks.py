"""Task cards for Hugging Face datasets: one made from a dataset's features (`--data` without
`--tasks`, and `ubench tasks add`), or a registered card pointed at a dataset (`--tasks NAME
--data SOURCE`).

A folder that `ubench export` wrote carries its task card (`ubench-task.yaml`): loading it back
gives that task, classes, kind and masks included.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub.columns import dataset_classes, find_columns
from ultrabench_eval.data.hub.export import CARD_FILE as EXPORTED_CARD
from ultrabench_eval.data.hub.load import LoadedSource, load_source, map_splits
from ultrabench_eval.data.hub.source import HubSource
from ultrabench_eval.data.task_card import SPLITS, TaskCard

TASK_PREFIX = "hf-"  # a card made from a dataset's features is named hf-<dataset>


def exported_card(source: HubSource, loaded: LoadedSource | None = None) -> TaskCard | None:
    """The card an exported folder (or hub repository: `loaded` lists its files) carries,
    pointed at the source; None when it carries none."""
    if source.is_hub:
        path = _hub_card_file(source, loaded)
        if loaded is not None and loaded.revision:  # the commit the card was read at
            source = replace(source, revision=loaded.revision)
    else:
        path = Path(source.path) / EXPORTED_CARD
    if path is None or not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())  # YAML errors span lines: one line
        raise UserError(f"cannot read the exported task card {path}: {problem}") from None
    if isinstance(data, dict):  # the task now reads this folder: nothing generates or prepares it
        data = {k: v for k, v in data.items() if k not in ("hf", "path", "generator", "preparer")}
    card = TaskCard.from_dict(data, path)
    return attach(card, source)


def _hub_card_file(source: HubSource, loaded: LoadedSource | None) -> Path | None:
    """The task card file of a hub repository `ubench export` wrote, downloaded at the commit
    the dataset was loaded at; None when the repository has none (offline: none cached)."""
    import huggingface_hub

    from ultrabench_eval.data.hub.load import offline

    files = loaded.extra.get("files") if loaded is not None else None
    if not offline() and (files is None or EXPORTED_CARD not in files):
        return None
    revision = loaded.revision if loaded is not None else source.revision
    try:
        return Path(
            huggingface_hub.hf_hub_download(
                source.id, EXPORTED_CARD, repo_type="dataset", revision=revision
            )
        )
    except Exception as exc:  # hub errors come in many types
        name = type(exc).__name__
        if "EntryNotFound" in name or "LocalEntryNotFound" in name:
            return None  # no card in the repository (or none cached, offline)
        from ultrabench_eval.data.hub.load import hub_error

        raise hub_error(source, exc) from exc


def attach(card: TaskCard, source: HubSource) -> TaskCard:
    """`card` reading its data from `source`, in a folder named after the source (so that a
    task's folder and hub copies never share an image store)."""
    return replace(card, dataset=source.slug, hf=source, path=card.path)


def task_name(source: HubSource) -> str:
    """hf-<org>--<name> for a hub dataset (two organisations' `name` are two tasks), hf-<name>
    for a local folder (or file)."""
    base = source.id.replace("/", "--") if source.id else Path(source.path).name
    base = Path(base).stem if source.path and Path(source.path).is_file() else base
    return TASK_PREFIX + (re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "dataset")


def card_from_features(
    name: str, source: HubSource, loaded: LoadedSource | None = None, *, progress: bool = False
) -> TaskCard:
    """A classification card for the dataset: classes from its label column (ClassLabel names,
    else its text values), split sizes after the split mapping (and the carving), source,
    licence and citation from its metadata."""
    from ultrabench_eval.data.hub.carve import carve_validation
    from ultrabench_eval.data.hub.columns import class_indices

    loaded = loaded or load_source(source, progress)
    mapping = map_splits(loaded)
    features = loaded.splits[mapping["train"]].features
    columns = find_columns(features, source, source.label)
    values = {
        ours: loaded.splits[theirs][columns.label]
        for ours, theirs in mapping.items()
        if theirs is not None
    }
    classes = dataset_classes(features, list(values.values()), columns.label)
    if len(classes) < 2:
        raise UserError(
            f"dataset {source.label}: label column '{columns.label}' has one class "
            f"({classes[0]}); a task needs two or more"
        )
    sizes = {ours: len(v) for ours, v in values.items()}
    if mapping["validation"] is None:
        train = loaded.splits[mapping["train"]]
        labels = class_indices(
            features, values["train"], columns.label, tuple(classes), source.label
        )
        groups = (
            None
            if columns.group is None
            else [None if g is None else str(g) for g in train[columns.group]]
        )
        carved = carve_validation(labels, groups, source.validation_fraction, source.seed)
        sizes["train"], sizes["validation"] = len(carved.train), len(carved.validation)
    pinned = replace(
        source,
        revision=loaded.revision or source.revision,
        image_column=columns.image,
        label_column=columns.label,
        group_column=columns.group,
        scan_mask_column=columns.scan_mask,
    )
    card = TaskCard(
        name=name,
        dataset=source.slug,
        classes=tuple(classes),
        description=_one_paragraph(loaded.description),
        source=loaded.homepage or source.label,
        license=loaded.license,
        citation=loaded.citation.strip(),
        split_sizes={s: sizes[s] for s in SPLITS},
        hf=pinned,
    )
    return card


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())[:500]


def cards_for_data(
    source: HubSource, tasks: list[str] | None, registry: Any, *, progress: bool = False
) -> list[str]:
    """Register the cards a run on `source` uses and return their names: with `tasks`, those
    cards reading their data from it; without, the card the folder carries (an export) or one
    made from the dataset's features."""
    registry.names()  # the card files first: the cards registered here replace theirs
    if tasks:
        names = []
        for name in tasks:
            card = registry.get(name)
            if card.generator is not None:
                raise UserError(
                    f"task {name} is generated (`ubench synth`): it cannot read --data "
                    f"{source.label}; leave it out or name another task"
                )
            merged = _merge(card.hf, source) if card.hf is not None else source
            registry.register(name, attach(card, merged), replace=True)
            names.append(name)
        return names
    loaded = load_source(source, progress) if source.is_hub else None
    card = exported_card(source, loaded) or card_from_features(
        task_name(source), source, loaded, progress=progress
    )
    registry.register(card.name, card, replace=True)
    return [card.name]


def _merge(theirs: HubSource, ours: HubSource) -> HubSource:
    """The card's column names and carving, with the dataset `--data` names (and any column
    the flags name)."""
    where = ("id", "path", "revision", "config")
    values = {k: v for k, v in asdict(theirs).items() if k not in where}
    named = ("image_column", "label_column", "group_column", "splits")
    given = {k: v for k, v in asdict(ours).items() if k in where or (k in named and v)}
    return HubSource(**{**values, **given})
