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
from typing import Any

import yaml

from ultrabench_eval.core.config import PACKAGE_DIR, TASKS_ENV
from ultrabench_eval.core.errors import UserError

SPLITS = ("train", "validation", "test")
_REQUIRED = ("name", "dataset", "classes")


@dataclass(frozen=True)
class TaskCard:
    name: str
    dataset: str
    classes: tuple[str, ...]
    label_field: str = "label"
    group_field: str | None = None
    metric: str = "macro_f1"
    organ: str = ""
    description: str = ""
    source: str = ""
    license: str = ""
    citation: str = ""
    # expected number of images per split, as published (or as generated)
    split_sizes: dict[str, int] = field(default_factory=dict)
    # "synth" for tasks `ubench synth` writes; the preparer of a raw download otherwise
    generator: str | None = None
    preparer: str | None = None
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> TaskCard:
        where = str(path) if path else "task card"
        if not isinstance(data, dict):
            raise UserError(f"{where}: a task card must be a YAML mapping")
        missing = [k for k in _REQUIRED if not data.get(k)]
        if missing:
            raise UserError(f"{where}: missing required field(s) {', '.join(missing)}")
        known = set(cls.__dataclass_fields__) - {"path"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}")
        classes = data["classes"]
        if not isinstance(classes, list) or len(classes) < 2:
            raise UserError(f"{where}: 'classes' must list at least two class names, label order")
        sizes = data.get("split_sizes") or {}
        bad = sorted(set(sizes) - set(SPLITS))
        if bad:
            raise UserError(f"{where}: split_sizes has unknown split(s) {', '.join(bad)}")
        values = {k: v for k, v in data.items() if k in known}
        values["classes"] = tuple(str(c) for c in classes)
        values["split_sizes"] = {k: int(v) for k, v in sizes.items()}
        return cls(**values, path=path)


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
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read task card {path}: {exc}") from None
    return TaskCard.from_dict(data, path)


def register_cards(registry: Any) -> None:
    for directory in card_dirs():
        if not directory.is_dir():
            raise UserError(f"task card folder {directory} (from {TASKS_ENV}) does not exist")
        for path in sorted(directory.glob("*.yaml")):
            card = read_card(path)
            registry.register(card.name, card, replace=True)
