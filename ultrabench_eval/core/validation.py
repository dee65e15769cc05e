"""Declarative checks of what a user gives (task cards, run settings): each dataclass field
declares its type and limits once, in its annotation (`Annotated[int, Ge(1)]`, `Literal[...]`,
a `Hint` saying how to fix it), and pydantic checks values against them. The first problem
becomes one `UserError` line: where, which field, what is wrong, how to fix it.

The limits are `annotated_types` objects (a light package pydantic is built on), so declaring
them costs nothing at import; pydantic itself is imported only when something is checked.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, Predicate

from ultrabench_eval.core.errors import UserError

T = TypeVar("T")


class Hint(str):
    """How to fix a field's value, as annotation metadata: `Annotated[int, Ge(1), Hint(...)]`.
    pydantic ignores it; the error line ends with it."""


def is_device_name(text: str) -> bool:
    return re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text) is not None


# Settings the bench and `ubench extract` share, with their defaults.
DEFAULT_DEVICE = "auto"
DEFAULT_BATCH_SIZE = 64  # images per forward pass
DEFAULT_WORKERS = 0  # image decoding processes; 0 picks the number
MIN_IMAGE_SIDE = 8  # pixels; smaller images leave nothing for a patch encoder to see

DeviceName = Annotated[str, Predicate(is_device_name), Hint("use auto, cpu, cuda or cuda:N")]
BatchSize = Annotated[int, Ge(1)]
ImageSide = Annotated[int, Ge(MIN_IMAGE_SIDE), Hint("an image side in pixels")]
Workers = Annotated[int, Ge(0), Hint("decoding processes; 0 picks the number")]


def flag_label(field: str) -> str:
    """`batch_size` -> `--batch-size`: how a setting is named on the command line."""
    return "--" + field.replace("_", "-")


def check_dataclass(
    instance: Any,
    where: str = "",
    label: Callable[[str], str] = flag_label,
) -> None:
    """Check every field of a dataclass instance against its declared annotation."""
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    parse_dataclass(type(instance), values, where, label)


def parse_dataclass(
    cls: type[T],
    values: Mapping[str, Any],
    where: str = "",
    label: Callable[[str], str] = str,
    internal: tuple[str, ...] = (),
) -> T:
    """A `cls` built from `values` (a YAML mapping, say) once each field has passed its
    annotation; unknown keys are an error when `cls` sets `__pydantic_config__` to forbid them.
    `internal` fields are set by the caller, not the user (left out of the known fields)."""
    from pydantic import ValidationError

    try:
        return _adapter(cls).validate_python(dict(values))
    except ValidationError as exc:
        hints = typing.get_type_hints(cls, include_extras=True)
        known = [name for name in hints if name not in internal]
        raise UserError(describe(exc, where, label, hints, known=known)) from None


def check_value(annotation: Any, value: Any, name: str, where: str = "") -> None:
    """Check one value against an annotation (`ImageSide`, say); `name` labels it."""
    from pydantic import ValidationError

    try:
        _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise UserError(describe(exc, where, lambda _: name, {"": annotation}, root="")) from None


@functools.cache
def _adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


# Error types that concern the whole mapping: listed together on the line, before the others.
_MISSING = "missing"
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")

_PROBLEMS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "literal_error": "must be {expected}",
    "predicate_failed": "is not valid",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be text (quote it)",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "path_type": "must be a path",
}


def describe(
    exc: Any,
    where: str = "",
    label: Callable[[str], str] = str,
    annotations: Mapping[str, Any] | None = None,
    root: str | None = None,
    known: list[str] | None = None,
) -> str:
    """One line for a pydantic ValidationError: `where: field problem, got value (hint)`."""
    errors = exc.errors(include_url=False)
    prefix = f"{where}: " if where else ""
    missing = [e for e in errors if e["type"] == _MISSING]
    unknown = [e for e in errors if e["type"] in _UNKNOWN]
    if missing:
        names = [_field(e["loc"], label) for e in missing]
        hint = _hint(annotations, missing[0]["loc"]) if len(missing) == 1 else ""
        return f"{prefix}missing required field(s) {', '.join(names)}{_suffix(hint)}"
    if unknown:
        names = [_field(e["loc"], label) for e in unknown]
        fix = f"known: {', '.join(known)}" if known else ""
        return f"{prefix}unknown field(s) {', '.join(names)}{_suffix(fix)}"
    error = errors[0]
    loc = error["loc"] if root is None else (root, *error["loc"])
    hint = _hint(annotations, loc)
    if loc and loc[-1] == "[key]":  # a mapping key outside the allowed ones
        expected = (error.get("ctx") or {}).get("expected", "")
        name = _field(loc[:-2], label)
        return f"{prefix}{name} has unknown key {loc[-2]!r}: use {expected}{_suffix(hint)}"
    template = _PROBLEMS.get(error["type"])
    problem = template.format(**error.get("ctx", {})) if template else _lower(error["msg"])
    field = _field(loc, label)
    subject = f"{field} " if field else ""
    return f"{prefix}{subject}{problem}, got {error['input']!r}{_suffix(hint)}"


def _field(loc: tuple, label: Callable[[str], str]) -> str:
    """('split_sizes', 'train') -> 'split_sizes.train'; ('classes', 0) -> 'classes[0]'."""
    if not loc:
        return label("")
    text = label(str(loc[0]))  # "" names the value `check_value` was given
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _hint(annotations: Mapping[str, Any] | None, loc: tuple) -> str:
    if not annotations or not loc:
        return ""
    annotation = annotations.get(str(loc[0]))
    return _find_hint(annotation) if annotation is not None else ""


def _find_hint(annotation: Any) -> str:
    """The first Hint in an annotation, looking through Optional and containers."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Hint):
            return str(meta)
    for arg in typing.get_args(annotation):
        found = _find_hint(arg)
        if found:
            return found
    return ""


def _suffix(hint: str) -> str:
    return f" ({hint})" if hint else ""


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def one_line(exc: BaseException, where: str = "") -> str:
    """An exception's message on one line (a pydantic ValidationError as `describe` words it)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return describe(exc, where)
    text = " ".join(str(exc).split())
    return f"{where}: {text}" if where else text
