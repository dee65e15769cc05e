"""Name -> object registries for models, tasks, corruptions and probes.

This is the only module that knows every model: it loads the built-in `model_zoo` and every
third-party package that exposes the `ultrabench_eval.models` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from ultrabench_eval.core.errors import UserError

T = TypeVar("T")

MODEL_ENTRY_POINT_GROUP = "ultrabench_eval.models"


class Registry(Generic[T]):
    """Objects found by name.

    A family of names (`timm:<model>`) is registered once as a prefix whose factory receives
    the full name. `populate` runs once, on first look-up, to fill the registry lazily.
    """

    def __init__(self, kind: str, list_command: str, populate: Callable[[], None] | None = None):
        self.kind = kind
        self.list_command = list_command
        self._populate = populate
        self._populated = populate is None
        self._entries: dict[str, T] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}

    def register(self, name: str, obj: T | None = None, *, replace: bool = False) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(target: T) -> T:
            if not replace and name in self._entries and self._entries[name] is not target:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = target
            return target

        return add if obj is None else add(obj)

    def register_prefix(self, prefix: str, factory: Callable[[str], T]) -> Callable[[str], T]:
        """Names `prefix<anything>` resolve to `factory(full_name)`."""
        self._prefixes[prefix] = factory
        return factory

    def get(self, name: str) -> T:
        self._ensure_populated()
        if name in self._entries:
            return self._entries[name]
        for prefix, factory in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return factory(name)
        raise UserError(self._unknown_message(name))

    def names(self) -> list[str]:
        self._ensure_populated()
        return sorted(self._entries)

    def prefixes(self) -> list[str]:
        self._ensure_populated()
        return sorted(self._prefixes)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: str) -> bool:
        self._ensure_populated()
        return name in self._entries or any(
            name.startswith(p) and len(name) > len(p) for p in self._prefixes
        )

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _ensure_populated(self) -> None:
        if not self._populated:
            self._populated = True
            assert self._populate is not None
            self._populate()

    def _unknown_message(self, name: str) -> str:
        known = self.names() + [p + "<name>" for p in self._prefixes]
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return (
            f"unknown {self.kind} '{name}': {hint}known: {', '.join(known) or 'none'} "
            f"(run `{self.list_command}`)"
        )


def _load_model_plugins() -> None:
    """Import the built-in zoo, then every entry point of the model group.

    An entry point may name a module (importing it registers its adapters) or a callable that
    takes the model registry.
    """
    importlib.import_module("model_zoo")
    for ep in entry_points(group=MODEL_ENTRY_POINT_GROUP):
        if ep.value == "model_zoo":
            continue
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plug-in must not hide the others
            print(
                f"warning: model plug-in '{ep.name}' ({ep.value}) failed to load: {exc}",
                file=sys.stderr,
            )
            continue
        if callable(loaded) and not isinstance(loaded, ModuleType):
            loaded(MODELS)


def _load_task_cards() -> None:
    # by name: the registries sit below every stage, which fill them on first look-up
    importlib.import_module("ultrabench_eval.data.task_card").register_cards(TASKS)


def _load_module(name: str) -> Callable[[], None]:
    return lambda: importlib.import_module(name) and None


MODELS: Registry[Any] = Registry("model", "ubench models", _load_model_plugins)
TASKS: Registry[Any] = Registry("task", "ubench tasks", _load_task_cards)
CORRUPTIONS: Registry[Any] = Registry(
    "corruption", "ubench corruptions", _load_module("ultrabench_eval.corruptions")
)
PROBES: Registry[Any] = Registry("probe", "ubench probes", _load_module("ultrabench_eval.probes"))


def register_model(name: str) -> Callable[[T], T]:
    """Decorator for adapter classes or factories: `@register_model("my-model")`."""
    return MODELS.register(name)
