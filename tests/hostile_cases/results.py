"""Hostile result records and baselines: `leaderboard`, `check`,
`compare`, `plot` and `report` refuse them in one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.hostile_cases.common import Case, Workspace
from tests.result_records import make_record
from ultrabench_eval.results import record as results
from ultrabench_eval.results.regression import make_baseline


def _records(ws: Workspace) -> list:
    records = [make_record("pixels", "toy", 60.0), make_record("hog", "toy", 70.0)]
    for record in records:
        results.write_record(ws.results, record)
    return records


def _baseline(edit: Callable[[dict[str, Any]], None], *extra: str):
    """A baseline of good records, edited by `edit`, then `ubench check`."""

    def prepare(ws: Workspace) -> list[str]:
        baseline = make_baseline(_records(ws))
        edit(baseline)
        path = ws.root / "baseline.json"
        path.write_text(json.dumps(baseline))  # json writes NaN as NaN, as Python reads it
        return ["check", "--baseline", str(path), *extra]

    return prepare


def _set(key: str, value: Any, cell: int | None = 0):
    def edit(baseline: dict[str, Any]) -> None:
        target = baseline if cell is None else baseline["cells"][cell]
        if value is _DROP:
            del target[key]
        else:
            target[key] = value

    return edit


_DROP = object()


def _bad_record(edit: Callable[[dict[str, Any]], None], command: list[str]):
    """Good records and one edited by `edit` in the results folder, then `command`."""

    def prepare(ws: Workspace) -> list[str]:
        _records(ws)
        path = results.write_record(ws.results, make_record("bad", "toy", 50.0))
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
        out = [str(ws.root / "out.html")] if command == ["report"] else []
        return [*command, *(["--out", *out] if out else [])]

    return prepare


def _no_model(data: dict[str, Any]) -> None:
    del data["model"]


def _text_score(data: dict[str, Any]) -> None:
    data["scores"]["mean"] = "high"


def _nan_score(data: dict[str, Any]) -> None:
    data["scores"]["mean"] = float("nan")


def _update_impossible(ws: Workspace) -> list[str]:
    _records(ws)
    blocker = ws.root / "a-file"
    blocker.write_text("not a folder")
    return ["check", "--update", "--baseline", str(blocker / "baseline.json")]


_NAMED_BASELINE = r"baseline\.json"

CASES = [
    Case("check: a NaN tolerance", _baseline(lambda b: None, "--tolerance", "nan"), "tolerance"),
    Case("check: an infinite tolerance", _baseline(lambda b: None, "--tolerance", "inf"), "tol"),
    Case("check: a NaN std tolerance", _baseline(lambda b: None, "--tolerance-std", "nan"), "tol"),
    Case("check: a NaN baseline mean", _baseline(_set("mean", float("nan"))), _NAMED_BASELINE),
    Case("check: an infinite baseline std", _baseline(_set("std", float("inf"))), _NAMED_BASELINE),
    Case("check: baseline without cells", _baseline(_set("cells", _DROP, None)), _NAMED_BASELINE),
    Case("check: baseline with no cells", _baseline(_set("cells", [], None)), _NAMED_BASELINE),
    Case("check: baseline cells null", _baseline(_set("cells", None, None)), _NAMED_BASELINE),
    Case("check: baseline cells a number", _baseline(_set("cells", 3, None)), _NAMED_BASELINE),
    Case("check: baseline cells text", _baseline(_set("cells", "abc", None)), _NAMED_BASELINE),
    Case("check: baseline cell not an object", _baseline(_set("cells", [1], None)), "baseline"),
    Case("check: baseline mean null", _baseline(_set("mean", None)), _NAMED_BASELINE),
    Case("check: baseline mean text", _baseline(_set("mean", "60")), _NAMED_BASELINE),
    Case("check: baseline model a number", _baseline(_set("model", 3)), _NAMED_BASELINE),
    Case("check: --update into an impossible path", _update_impossible, r"a-file"),
]
for command in (
    ["leaderboard"],
    ["check", "--baseline", "b.json"],
    ["compare", "--published", "us-jepa-2026"],
    ["plot"],
    ["report"],
):
    name = command[0]
    CASES += [
        Case(f"{name}: a record without model", _bad_record(_no_model, command), r"bad.*model"),
        Case(f"{name}: a text score", _bad_record(_text_score, command), r"bad.*scores\.mean"),
        Case(f"{name}: a NaN score", _bad_record(_nan_score, command), r"bad.*scores\.mean"),
    ]
