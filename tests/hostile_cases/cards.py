"""Hostile task cards: each is one line naming the card file."""

from __future__ import annotations

from tests.hostile_cases.common import Case, Workspace, bench_args, write_task


def _card(extra: dict):
    def prepare(ws: Workspace) -> list[str]:
        write_task(ws, card_extra=extra)
        return bench_args("toy")

    return prepare


def _card_text(text: str):
    """A card file written as raw YAML text (for syntax errors and tags)."""

    def prepare(ws: Workspace) -> list[str]:
        write_task(ws)
        (ws.cards / "toy.yaml").write_text(text)
        return bench_args("toy")

    return prepare


def _duplicate_classes(ws: Workspace) -> list[str]:
    write_task(ws, classes=("a", "a"))
    return bench_args("toy")


_GOOD = "name: toy\ndataset: toy_v1\nclasses: [a, b]\n"

CASES = [
    Case("cards: unknown metric", _card({"metric": "accuracy_top5_bogus"}), r"toy\.yaml.*metric"),
    Case("cards: metric given as a list", _card({"metric": ["macro_f1"]}), r"toy\.yaml.*metric"),
    Case("cards: duplicated class names", _duplicate_classes, r"toy\.yaml.*classes.*'a'"),
    Case("cards: a number as the name", _card({"name": 123}), r"toy\.yaml.*name.*text"),
    Case("cards: split_sizes a list", _card({"split_sizes": [1, 2]}), r"toy\.yaml.*split_sizes"),
    Case(
        "cards: split_sizes not a number",
        _card({"split_sizes": {"train": "many"}}),
        r"toy\.yaml.*split_sizes\.train",
    ),
    Case(
        "cards: YAML syntax error",
        _card_text(_GOOD + "organ: [liver\n"),
        r"toy\.yaml.*line \d+",
    ),
    Case(
        "cards: a !!python tag",
        _card_text(_GOOD + "organ: !!python/object/apply:os.system [echo hi]\n"),
        r"toy\.yaml.*line 4",
    ),
]
