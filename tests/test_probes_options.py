"""Probe options declared once, checked when a probe is built."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Literal

import pytest
from annotated_types import Ge

from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes import LinearProbe
from ultrabench_eval.probes.attentive import AttentiveOptions
from ultrabench_eval.probes.dense import DenseOptions
from ultrabench_eval.probes.knn import KNNOptions
from ultrabench_eval.probes.linear import LinearOptions
from ultrabench_eval.probes.options import (
    FORBID_UNKNOWN,
    DeviceOption,
    Positive,
    check_device_option,
    parse_options,
)


@dataclass(frozen=True)
class Toy:
    __pydantic_config__ = FORBID_UNKNOWN

    size: Annotated[int, Ge(1)] = 3
    rate: Positive = 0.5
    mode: Literal["a", "b"] = "a"
    device: DeviceOption = "auto"


def test_defaults_and_given_values() -> None:
    assert parse_options(Toy, {}) == Toy()
    assert parse_options(Toy, {"size": 7, "mode": "b"}) == Toy(size=7, mode="b")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"size": 0}, ValueError, "size must be at least 1, got 0"),
        ({"size": "big"}, TypeError, "size must be a whole number, got 'big'"),
        ({"rate": 0.0}, ValueError, "rate must be greater than 0"),
        ({"mode": "c"}, ValueError, "mode must be 'a' or 'b', got 'c'"),
        ({"colour": 1}, TypeError, "unknown field(s) colour (known: size, rate, mode, device)"),
    ],
)
def test_a_bad_option_is_one_line(options, error, message) -> None:
    with pytest.raises(error) as caught:
        parse_options(Toy, options)
    assert str(caught.value) == message or str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unknown_options_list_the_extra_known_names() -> None:
    with pytest.raises(TypeError, match=r"known: size, rate, mode, device, extra\)"):
        parse_options(Toy, {"colour": 1}, also_known=("extra",))


@pytest.mark.parametrize("value", [None, "auto", "cpu", "cuda", "cuda:3"])
def test_device_names(value) -> None:
    check_device_option(value)


def test_bad_device_names() -> None:
    with pytest.raises(ValueError, match="device is not valid, got 'gpu'"):
        check_device_option("gpu")
    with pytest.raises(TypeError, match="device must be text"):
        check_device_option(1)


@pytest.mark.parametrize(
    "options_class", [LinearOptions, KNNOptions, AttentiveOptions, DenseOptions]
)
def test_every_declared_option_is_taken_by_its_probe(options_class) -> None:
    probe = {
        LinearOptions: "linear",
        KNNOptions: "knn",
        AttentiveOptions: "attentive",
        DenseOptions: "dense",
    }[options_class]
    defaults = {f.name: getattr(options_class(), f.name) for f in fields(options_class)}
    PROBES.get(probe)(**defaults)


def test_registered_probes_reject_unknown_options() -> None:
    for name in ("linear", "lbfgs", "knn", "mlp", "us-jepa-2026", "attentive", "dense"):
        with pytest.raises(TypeError, match="unknown field"):
            PROBES.get(name)(no_such_option=1)
    assert LinearProbe().device.type in ("cpu", "cuda")


@pytest.mark.parametrize(
    ("probe", "options"),
    [
        ("mlp", {"lr": float("inf")}),
        ("us-jepa-2026", {"weight_decay": float("inf")}),
        ("linear", {"tol": float("inf")}),
        ("linear", {"Cs": [1.0, float("inf")]}),
    ],
)
def test_an_infinite_number_is_refused(probe, options) -> None:
    with pytest.raises(ValueError, match=r"finite|inf"):
        PROBES.get(probe)(**options)
