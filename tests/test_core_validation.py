"""Declared limits on dataclass fields, checked by pydantic, each problem one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pytest
from annotated_types import Ge, MinLen

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import (
    DeviceName,
    Hint,
    ImageSide,
    check_dataclass,
    check_value,
    flag_label,
    is_device_name,
    one_line,
    parse_dataclass,
)


@dataclass
class Settings:
    __pydantic_config__ = {"extra": "forbid"}  # noqa: RUF012

    name: Annotated[str, MinLen(1), Hint("a short name")]
    batch_size: Annotated[int, Ge(1)] = 4
    sizes: Annotated[dict[Literal["a", "b"], int], Hint("e.g. {a: 1}")] = field(
        default_factory=dict
    )
    device: DeviceName = "auto"


def _error(values, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        parse_dataclass(Settings, values, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_valid_values_build_the_dataclass():
    built = parse_dataclass(Settings, {"name": "x", "batch_size": "3", "sizes": {"a": 2}})
    assert built == Settings(name="x", batch_size=3, sizes={"a": 2})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "f.yaml: missing required field(s) name (a short name)"),
        ({"name": "x", "colour": 1}, "f.yaml: unknown field(s) colour (known: name, batch_size"),
        ({"name": "x", "batch_size": 0}, "f.yaml: batch_size must be at least 1, got 0"),
        ({"name": "x", "batch_size": "many"}, "batch_size must be a whole number, got 'many'"),
        ({"name": ""}, "name must not be empty, got '' (a short name)"),
        (
            {"name": "x", "sizes": {"c": 1}},
            "sizes has unknown key 'c': use 'a' or 'b' (e.g. {a: 1})",
        ),
        ({"name": "x", "sizes": {"a": "y"}}, "sizes.a must be a whole number, got 'y' (e.g."),
        ({"name": "x", "device": "gpu"}, "device is not valid, got 'gpu' (use auto, cpu, cuda"),
    ],
)
def test_each_problem_is_one_line_with_the_field_and_the_fix(values, message):
    assert message in _error(values, where="f.yaml")


def test_several_missing_fields_are_named_together():
    @dataclass
    class Two:
        first: int
        second: int

    with pytest.raises(UserError, match=r"missing required field\(s\) first, second$"):
        parse_dataclass(Two, {})


def test_a_dataclass_instance_is_checked_with_flag_labels():
    check_dataclass(Settings(name="x"))
    with pytest.raises(UserError, match="^--batch-size must be at least 1, got 0$"):
        check_dataclass(Settings(name="x", batch_size=0))
    assert flag_label("image_size") == "--image-size"


def test_one_value_against_a_declared_type():
    check_value(ImageSide, 8, "--size")
    with pytest.raises(UserError, match="^--size must be at least 8, got 4 \\(an image side"):
        check_value(ImageSide, 4, "--size")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("auto", True), ("cpu", True), ("cuda", True), ("cuda:1", True), ("gpu", False), ("", False)],
)
def test_device_names(name, ok):
    assert is_device_name(name) is ok


def test_one_line_flattens_any_message():
    assert one_line(ValueError("a\n  b")) == "a b"
    from pydantic import TypeAdapter, ValidationError

    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Annotated[int, Ge(1)]).validate_python(0)
    assert one_line(caught.value) == "must be at least 1, got 0"
