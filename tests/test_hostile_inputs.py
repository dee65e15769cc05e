"""Every hostile case (tests/hostile_cases/) ends as one error line, exit code 2, no traceback,
and nothing half-written in the data, cache or results folders."""

from __future__ import annotations

import re

import pytest

from tests.hostile_cases import ALL_CASES
from tests.hostile_cases.common import Case, Workspace
from ultrabench_eval.cli import main
from ultrabench_eval.core.registry import TASKS

HALF_WRITTEN = ("*.tmp*", "*.part", ".tmp-*", "*.partial.*")


def _files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_hostile_case_is_one_line_and_exit_2(case: Case, tmp_path, monkeypatch, capsys):
    ws = Workspace(tmp_path)
    for name, folder in (
        ("UBENCH_DATA", ws.data),
        ("UBENCH_CACHE", ws.cache),
        ("UBENCH_RESULTS", ws.results),
        ("UBENCH_TASKS", ws.cards),
    ):
        monkeypatch.setenv(name, str(folder))
    # the task registry reads the card folders once per process: make it read this case's
    monkeypatch.setattr(TASKS, "_entries", {})
    monkeypatch.setattr(TASKS, "_populated", False)
    ws.cards.mkdir(parents=True, exist_ok=True)
    argv = case.prepare(ws)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    results_before = _files(ws.results)
    capsys.readouterr()

    code = main(argv)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) >= 1 and re.search(case.expect, lines[-1]), err
    error_lines = [line for line in lines if "error" in line]
    assert len(error_lines) == 1, err
    for pattern in HALF_WRITTEN:
        for folder in (ws.data, ws.cache, ws.results):
            if folder.exists():
                assert not list(folder.rglob(pattern)), f"half-written {pattern} in {folder}"
    if case.no_results:
        assert _files(ws.results) - results_before <= {""}, "results written by a failed run"


def test_the_cases_cover_every_area():
    assert len(ALL_CASES) >= 2
    assert len({c.name for c in ALL_CASES}) == len(ALL_CASES), "case names must be unique"
