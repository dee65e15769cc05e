"""Declared probe options: each probe's options are one dataclass whose fields declare their type,
limits and default once (`Annotated[int, Ge(1)]`, `Literal[...]`), as `core.validation` does for
task cards and run settings; building a probe checks the options given against it, before any
work.

A problem is one line naming the option and what it accepts: an unknown option or a value of the
wrong type is a TypeError, a value out of range a ValueError (`protocols.config.validate` turns
either into a UserError).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from annotated_types import Gt

from ultrabench_eval.core.validation import DeviceName, describe

__all__ = [
    "FORBID_UNKNOWN",
    "NUMBER_NEUTRAL_OPTIONS",
    "DeviceOption",
    "Positive",
    "check_device_option",
    "parse_options",
]

T = TypeVar("T")

# `__pydantic_config__` of an options dataclass: an option it does not declare is an error, and
# so is an infinite or NaN number (`lr=inf` trains and scores garbage; no option needs it).
FORBID_UNKNOWN: dict[str, Any] = {"extra": "forbid", "allow_inf_nan": False}

# Options that choose where a probe runs, not what it computes: they do not name a protocol
# variant (`results.record.protocol_id`), so a record fitted on the CPU and one fitted on a GPU
# share a protocol id. Every other option, given, makes one (max_epochs, Cs, backend...).
NUMBER_NEUTRAL_OPTIONS = frozenset({"device"})

Positive = Annotated[float, Gt(0)]
# "auto" (or None): the GPU when there is one; see `core.device.resolve_device`.
DeviceOption = DeviceName | None

# pydantic error types that mean "not this kind of value" (TypeError), not "out of range".
_WRONG_KIND = ("unexpected_keyword_argument", "extra_forbidden")
_WRONG_KIND_SUFFIXES = ("_type", "_parsing", "_from_float")


def parse_options(
    options_class: type[T], options: Mapping[str, Any], also_known: tuple[str, ...] = ()
) -> T:
    """`options_class` built from `options` once each has passed its declaration.

    `also_known` names the probe's options that are not fields of `options_class` (such as a
    device taken apart), for the list an unknown option is told.
    """
    from pydantic import ValidationError

    try:
        return _adapter(options_class).validate_python(dict(options))
    except ValidationError as exc:
        hints = typing.get_type_hints(options_class, include_extras=True)
        line = describe(exc, annotations=hints, known=[*hints, *also_known])
        kinds = [error["type"] for error in exc.errors(include_url=False)]
        wrong_kind = any(k in _WRONG_KIND or k.endswith(_WRONG_KIND_SUFFIXES) for k in kinds)
        raise (TypeError if wrong_kind else ValueError)(line) from None


def check_device_option(value: Any) -> None:
    """Check a `device` option on its own (for probes whose other options are a preset)."""
    from pydantic import ValidationError

    if value is None:
        return
    try:
        _adapter(DeviceName).validate_python(value)
    except ValidationError as exc:
        line = describe(exc, label=lambda _: "device", annotations={"": DeviceName}, root="")
        raise (ValueError if isinstance(value, str) else TypeError)(line) from None


@functools.cache
def _adapter(annotation: Any) -> Any:
    # pydantic is imported on first use only: it costs a noticeable fraction of a second.
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)
