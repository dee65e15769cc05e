"""`ubench --verbose`: a user error stays one line, with what caused it (torch's own text for a
weights file) printed above it."""

from tests.hostile_cases.common import Workspace
from tests.hostile_cases.weights import _pickle_with_code
from ultrabench_eval.cli import main
from ultrabench_eval.core.registry import TASKS


def test_verbose_prints_the_cause_above_the_one_line_error(tmp_path, monkeypatch, capsys):
    ws = Workspace(tmp_path)
    for name, folder in (("UBENCH_DATA", ws.data), ("UBENCH_TASKS", ws.cards)):
        monkeypatch.setenv(name, str(folder))
    # the task registry reads the card folders once per process: make it read this test's
    monkeypatch.setattr(TASKS, "_entries", {})
    monkeypatch.setattr(TASKS, "_populated", False)
    argv = _pickle_with_code(ws)

    assert main(argv) == 2
    quiet = capsys.readouterr().err.strip().splitlines()
    assert len(quiet) == 1 and "no code from the file was run" in quiet[0]

    assert main(["--verbose", *argv]) == 2
    verbose = capsys.readouterr().err.strip().splitlines()
    assert verbose[-1] == quiet[0]
    assert "Traceback" in verbose[0] and len(verbose) > 3
    assert any("Weights only load failed" in line for line in verbose)
