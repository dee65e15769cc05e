"""Task cards: one YAML file per task, naming its UltraBench-format dataset folder, label field
and class names.

A card is a classification task (`kind: classification`, the default: one class index per
image, scored by macro-F1) or a segmentation task (`kind: segmentation`: one label mask per
image, named by the record key `mask_field`, scored by Dice and mean IoU). A segmentation card's
`classes` list every class of the mask, background first; `mask_values` says which pixel value
each class has in the mask files when that is not its index (UltraBench writes binary masks as
0/255 in places).

A card with an `hf:` block takes its data from a Hugging Face dataset (see `data/hub/source.py`)
instead of a prepared folder below the dataset root.

Cards are read from, in order (later ones replace earlier ones of the same name): the cards
shipped with the package, the repository's `tasks/` folder, and every folder in the
`UBENCH_TASKS` environment variable (separated by the OS path separator).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from annotated_types import Ge, Le, MinLen

from ultrabench_eval.core.config import PACKAGE_DIR, TASKS_ENV
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import Hint, parse_dataclass
from ultrabench_eval.data.hub.source import HubSource

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
TaskKind = Literal["classification", "segmentation"]
# Segmentation scores compare masks resized (nearest) to this side unless the card says
# otherwise: the same pixels for every model, whatever its input size.
DEFAULT_EVAL_SIZE = 224
Metric = Literal["macro_f1", "dice"]

Name = Annotated[str, MinLen(1)]
# Fields that name things (`--tasks` takes the name, the folder is the dataset): numbers in them
# are refused rather than read as text, since YAML changes how they are written (1.10 -> 1.1).
_IDENTIFIERS = ("name", "dataset")


@dataclass(frozen=True)
class TaskCard:
    """A task card. Each field's type and allowed values are declared here once; `from_dict`
    checks a card file against them (`ultrabench_eval.core.validation`)."""

    # unknown keys are an error; numbers in text fields (`license: 2.0`) are read as text
    __pydantic_config__ = {"extra": "forbid", "coerce_numbers_to_str": True}  # noqa: RUF012

    name: Annotated[Name, Hint("the task's name, as `--tasks` takes it")]
    dataset: Annotated[Name, Hint("the task's folder below the dataset root")]
    classes: Annotated[
        tuple[Name, ...],
        MinLen(2),
        Hint("list at least two class names, in label order, e.g. [benign, malignant]"),
    ]
    label_field: Annotated[Name, Hint("the record key holding the class index")] = "label"
    group_field: Annotated[Name, Hint("the record key of the patient or source")] | None = None
    kind: Annotated[
        TaskKind, Hint("classification (a label per image) or segmentation (a mask per image)")
    ] = "classification"
    metric: Annotated[Metric | None, Hint("macro_f1 for classification, dice for segmentation")] = (
        None
    )
    # segmentation only: the record key of the label mask, and each class's pixel value in it
    mask_field: Annotated[Name, Hint("the record key of the label mask path")] | None = None
    mask_values: (
        Annotated[
            tuple[Annotated[int, Ge(0), Le(255)], ...],
            Hint("one pixel value (0-255) per class, in class order, e.g. [0, 255]"),
        ]
        | None
    ) = None
    # segmentation only: the side (px) at which predicted and true masks are compared
    eval_size: Annotated[int, Ge(16), Le(1024), Hint("a side in pixels, e.g. 224")] | None = None
    organ: str = ""
    description: str = ""
    source: str = ""
    license: str = ""
    citation: str = ""
    # expected number of images per split, as published (or as generated)
    split_sizes: Annotated[
        dict[Split, Annotated[int, Ge(0)]],
        Hint("images per split, e.g. {train: 800, validation: 100, test: 200}"),
    ] = field(default_factory=dict)
    # "synth" for tasks `ubench synth` writes; the preparer of a raw download otherwise
    generator: Annotated[Literal["synth"], Hint("only generated tasks name one")] | None = None
    preparer: Annotated[Name, Hint("see `ubench prepare`, e.g. ubench:busbra")] | None = None
    # the task's data is a Hugging Face dataset (hub id or local files), not a prepared folder
    hf: HubSource | None = None
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_segmentation(self) -> bool:
        return self.kind == "segmentation"

    @property
    def score_metric(self) -> str:
        """The headline score: the card's metric, else the kind's (macro-F1 or Dice)."""
        return self.metric or ("dice" if self.is_segmentation else "macro_f1")

    @property
    def evaluation_size(self) -> int:
        """The side of the square at which a segmentation task's masks are compared."""
        return self.eval_size or DEFAULT_EVAL_SIZE

    @property
    def pixel_values(self) -> tuple[int, ...]:
        """Each class's pixel value in the mask files (its index unless `mask_values`)."""
        return self.mask_values or tuple(range(self.num_classes))

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> TaskCard:
        """The card a YAML mapping describes; a wrong field is one UserError line naming the
        file, the field and the fix."""
        where = str(path) if path else "task card"
        if not isinstance(data, dict):
            raise UserError(f"{where}: a task card must be a YAML mapping")
        if "path" in data:  # where the card lies is not the card's to say
            raise UserError(f"{where}: unknown field(s) path (the card's location is its file)")
        # a key left blank (`organ:`) is a key left out
        values = {k: v for k, v in data.items() if v is not None}
        for key in _IDENTIFIERS:  # YAML reads `1.10` as 1.1: an identifier must be written as text
            if key in values and not isinstance(values[key], str):
                raise UserError(f"{where}: {key} must be text (quote it), got {values[key]!r}")
        card = parse_dataclass(cls, {**values, "path": path}, where, internal=("path",))
        repeated = sorted({c for c in card.classes if card.classes.count(c) > 1})
        if repeated:
            raise UserError(
                f"{where}: classes names {', '.join(map(repr, repeated))} more than once "
                "(each class index needs its own name)"
            )
        _check_kind(card, where)
        if card.hf is not None and card.generator is not None:
            raise UserError(f"{where}: a generated task (generator) cannot have an hf source")
        if card.hf is not None and card.hf.path is not None and path is not None:
            # a relative dataset path in a card is relative to the card's folder
            local = (Path(path).parent / Path(card.hf.path).expanduser()).resolve()
            card = replace(card, hf=replace(card.hf, path=str(local)))
        return card


def _check_kind(card: TaskCard, where: str) -> None:
    """The fields a card's kind needs, and none of the other kind's."""
    if card.is_segmentation:
        if card.mask_field is None:
            raise UserError(
                f"{where}: a segmentation card needs `mask_field` (the record key holding each "
                "image's label mask, e.g. tumor_mask)"
            )
        if card.metric not in (None, "dice"):
            raise UserError(f"{where}: a segmentation card is scored by `metric: dice`")
        values = card.mask_values
        if values is not None and len(values) != card.num_classes:
            raise UserError(
                f"{where}: mask_values gives {len(values)} pixel value(s) for "
                f"{card.num_classes} classes (one per class, background first)"
            )
        if values is not None and len(set(values)) != len(values):
            raise UserError(f"{where}: mask_values repeats a pixel value (one per class)")
        return
    if card.mask_field is not None or card.mask_values is not None or card.eval_size is not None:
        raise UserError(
            f"{where}: mask_field, mask_values and eval_size belong to segmentation cards (add "
            "`kind: segmentation`, or remove them)"
        )
    if card.metric not in (None, "macro_f1"):
        raise UserError(f"{where}: a classification card is scored by `metric: macro_f1`")


def card_yaml(card: TaskCard, **overrides: Any) -> str:
    """The card as a YAML file `read_card` reads back: the fields that are set, in the order
    they are declared (`path` aside); an override replaces a field, or drops it when None."""
    data: dict[str, Any] = {}
    for item in fields(card):
        value = getattr(card, item.name)
        if item.name == "path" or value is None or value in ("", (), {}):
            continue
        if is_dataclass(value):  # the hf block: its keys that are set
            value = {k: v for k, v in asdict(value).items() if v not in (None, "", {})}
        data[item.name] = list(value) if isinstance(value, tuple) else value
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def card_dirs() -> list[Path]:
    package_cards = PACKAGE_DIR / "task_cards"
    repo_cards = PACKAGE_DIR.parent / "tasks"
    dirs = [d for d in (package_cards, repo_cards) if d.is_dir()]
    extra = os.environ.get(TASKS_ENV, "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return dirs


def read_card(path: Path) -> TaskCard:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read task card {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"cannot read task card {path}: {_yaml_problem(exc)}") from None
    return TaskCard.from_dict(data, path)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML syntax error on one line: what and where (the library's message spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{problem}{at} (fix the YAML syntax)"


def register_cards(registry: Any) -> None:
    for directory in card_dirs():
        if not directory.is_dir():
            raise UserError(f"task card folder {directory} (from {TASKS_ENV}) does not exist")
        for path in sorted(directory.glob("*.yaml")):
            card = read_card(path)
            registry.register(card.name, card, replace=True)
