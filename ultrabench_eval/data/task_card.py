"""Task cards: one YAML file per task, naming its UltraBench-format dataset folder, label field
and class names.

Cards are read from, in order (later ones replace earlier ones of the same name): the cards
shipped with the package, the repository's `tasks/` folder, and every folder in the
`UBENCH_TASKS` environment variable (separated by the OS path separator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from annotated_types import Ge, MinLen

from ultrabench_eval.core.config import PACKAGE_DIR, TASKS_ENV
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import Hint, parse_dataclass

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = get_args(Split)

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
    metric: Annotated[Literal["macro_f1"], Hint("the bench reports macro-F1")] = "macro_f1"
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
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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
        return card


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
