"""Flag value types: comma lists, label fractions (or percent) and shots."""

from __future__ import annotations

import argparse
import re

import pytest

from ultrabench_eval.cli.arguments import csv_list, fractions, given, shots


def test_csv_list_drops_blanks():
    assert csv_list(" a, b,,c ") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1,0.1", (1.0, 0.1)), ("100,50,10,5,1", (1.0, 0.5, 0.1, 0.05, 0.01))],
)
def test_fractions_or_percent(text, expected):
    assert fractions(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "fractions must be in (0, 1] or (0, 100] %"),
        ("150", "fractions must be in (0, 1] or (0, 100] %"),
        ("", "fractions must be in"),
        ("a,b", "not a comma-separated list of numbers"),
    ],
)
def test_bad_fractions(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        fractions(text)


def test_shots():
    assert shots("1,5,10") == (1, 5, 10)
    for bad in ("0", "", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            shots(bad)


def test_given_keeps_only_flags_the_user_gave():
    args = argparse.Namespace(seed=None, workers=3, size=0)
    assert given(args, seed="seed", workers="workers", side="size") == {"workers": 3, "side": 0}
